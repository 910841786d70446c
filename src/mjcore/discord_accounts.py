"""The pool of Discord accounts that run Midjourney jobs: which one takes a job, and when
one is taken out of service.

Each account is a Discord user (its token sends the jobs) in one guild and channel, with
its own concurrency: a Midjourney subscription runs 3 fast jobs at a time (12 on Pro).
Follow-ups stay on the account that made their grid (its messages, its buttons).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from datetime import datetime

from attrs import field, frozen

from .errors import Conflict, ProviderNotConfigured, ProviderRejected
from .limits import Text, Whole

ACCOUNT_NAME = Text(
    "name", 64, 1, pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*", hint="letters, digits, _ . -"
)
SNOWFLAKE = Text("id", 20, 1, pattern=r"[0-9]+", hint="a Discord id (digits)")
DISCORD_TOKEN = Text("token", 256, 8, pattern=r"[\x21-\x7e]+", hint="a Discord token")
ACCOUNT_CONCURRENCY = Whole("concurrency", 1, 1000)
ACCOUNT_QUEUE_SIZE = Whole("queue_size", 0, 100_000)
ACCOUNT_MODE = Text("mode", 8, choices=("any", "fast", "relax"))
DEFAULT_ACCOUNT = "default"
"""The account the ``MJCORE_DISCORD_*`` settings describe, when they are set."""
FAILURES_BEFORE_UNHEALTHY = 3
"""Consecutive refused interactions that take an account out of service."""


class Mode(enum.StrEnum):
    """Midjourney's speed for the account's jobs; ``ANY`` leaves the prompt as it is."""

    ANY = "any"
    FAST = "fast"
    RELAX = "relax"


class Health(enum.StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # Midjourney or Discord said something is wrong; checked again
    REJECTED = "rejected"  # Discord refused the token (401/403): it needs a new one


@frozen(repr=False)
class Secret:
    """A token that never shows itself: not in repr, str, logs or answers."""

    _value: str = field(alias="value")

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@frozen
class DiscordAccount:
    name: str
    guild_id: str
    channel_id: str
    user_token: Secret
    bot_token: Secret | None = None  # its listener's bot (else the settings' bot token)
    concurrency: int = 3
    queue_size: int = 10  # follow-ups waiting for this account (the global queue caps all)
    mode: Mode = Mode.ANY
    enabled: bool = True  # the operator's switch
    health: Health = Health.HEALTHY
    health_reason: str | None = None
    last_error: str | None = None
    running: int = 0  # jobs at Discord now (moved only under the queue lock)
    jobs: int = 0  # jobs ever sent
    failures: int = 0  # consecutive refused interactions
    last_used_at: datetime | None = None
    created_at: datetime | None = None

    @property
    def available(self) -> bool:
        """May it take jobs?"""
        return self.enabled and self.health is Health.HEALTHY

    @property
    def free(self) -> int:
        return max(self.concurrency - self.running, 0) if self.available else 0

    @property
    def state(self) -> str:
        """One word for people: ``disabled``, ``rejected``, ``unhealthy`` or ``healthy``."""
        return "disabled" if not self.enabled else self.health.value


def pick(accounts: Iterable[DiscordAccount]) -> DiscordAccount | None:
    """The account a new job goes to: available, the most free slots, then the least
    recently used (never used first), then by name; None if every one is full or down."""
    ready = [a for a in accounts if a.free > 0]
    if not ready:
        return None
    return min(
        ready,
        key=lambda a: (-a.free, a.last_used_at is not None, a.last_used_at or 0, a.name),
    )


_TROUBLE = [
    (re.compile(r"action (?:needed|required)|verify (?:you|that you)|captcha", re.I), "captcha"),
    (re.compile(r"subscri(?:be|ption)|plan (?:has )?(?:expired|ended)", re.I), "subscription"),
    (
        re.compile(r"fast hours|out of (?:fast )?(?:hours|credits)|credits? (?:ran|run) out", re.I),
        "fast hours",
    ),
    (re.compile(r"\bblocked\b|\bsuspended\b|\bbanned from\b", re.I), "blocked"),
]
"""Midjourney's words that say the *account* is in trouble, not just one job."""


def account_trouble(reason: str) -> str | None:
    """What is wrong with the account, if Midjourney's message says so."""
    for pattern, what in _TROUBLE:
        if pattern.search(reason):
            return what
    return None


class AccountRejected(ProviderRejected):
    """Discord refused the account's token (401/403): the account is taken out of service."""


class NoAccountAvailable(ProviderNotConfigured):
    """Every Discord account is disabled or unhealthy: the job is refused up front (503),
    nothing charged."""


class AccountGone(Conflict):
    """The account a follow-up must use (its grid's) is disabled, unhealthy or removed (409)."""


class AccountNameTaken(Conflict):
    pass

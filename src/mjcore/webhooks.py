"""Client callbacks: which task events go where, and the retry schedule of their delivery.

A delivery is written in the same transaction as the task transition it reports (a
transactional outbox): a crash never loses one, a rolled-back transition never sends one.
"""

from __future__ import annotations

import base64
import enum
import random
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from attrs import field, frozen

from .limits import Text
from .tasks import Task, TaskStatus

HOOK_URL = Text("notify_hook", 2048, pattern=r"https?://[^\s<>]+", hint="one http(s) URL")
SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)


def new_secret() -> str:
    """A signing secret in Standard Webhooks' form: ``whsec_`` and 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key a ``whsec_…`` secret stands for (ValueError if it is not base64)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


class HookStyle(enum.StrEnum):
    """The shape of the body a hook receives."""

    MJCORE = "mjcore"  # the task as GET /v1/api/trigger/task/{id} shows it, plus "event"
    NOVICEZK = "novicezk"  # midjourney-proxy's task object


class WebhookEvent(enum.StrEnum):
    STARTED = "task.started"
    PROGRESS = "task.progress"
    SUCCEEDED = "task.succeeded"
    FAILED = "task.failed"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # every attempt failed
    GONE = "gone"  # the receiver answered 410: it wants no more


@frozen
class Hook:
    url: str
    style: HookStyle = HookStyle.MJCORE

    def as_param(self) -> dict[str, str]:
        return {"url": self.url, "style": self.style.value}


def hooks_of(task: Task) -> list[Hook]:
    """The hooks a task was accepted with (kept in its params)."""
    found = task.params.get("hooks") or []
    return [Hook(h["url"], HookStyle(h.get("style", "mjcore"))) for h in found]


def with_hooks(params: Mapping[str, Any], hooks: Sequence[Hook]) -> dict[str, Any]:
    """``params`` carrying ``hooks`` (none: unchanged, so a task without hooks stays lean)."""
    if not hooks:
        return dict(params)
    return dict(params) | {"hooks": [h.as_param() for h in hooks]}


def event_for(before: Task, after: Task) -> WebhookEvent | None:
    """What a transition from ``before`` to ``after`` tells a client, if anything."""
    if after.status is TaskStatus.SUCCESS:
        return WebhookEvent.SUCCEEDED
    if after.status is TaskStatus.FAILURE:
        return WebhookEvent.FAILED
    if after.status is TaskStatus.IN_PROGRESS:
        if before.status is not TaskStatus.IN_PROGRESS:
            return WebhookEvent.STARTED
        if after.progress != before.progress:
            return WebhookEvent.PROGRESS
    return None


def new_webhook_id() -> str:
    """The id a delivery keeps across its attempts (receivers deduplicate on it)."""
    return f"msg_{secrets.token_urlsafe(18)}"


@frozen
class Delivery:
    """One event for one hook, and how its delivery is going."""

    webhook_id: str
    task_id: str
    event: WebhookEvent
    url: str
    style: HookStyle
    created_at: datetime
    next_attempt_at: datetime
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    payload: str | None = None  # the body, fixed at the first attempt
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    id: int | None = None


@frozen
class Outcome:
    """What one attempt gave: the receiver's HTTP status, or why there was none."""

    status: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == 410


@frozen
class RetryPolicy:
    """``attempts`` in all; the waits between them grow geometrically from ``first_s`` to
    ``last_s`` (10 s to a day by default), each with ±20 % jitter."""

    attempts: int = 10
    first_s: float = 10.0
    last_s: float = 86400.0
    _rng: random.Random = field(factory=random.Random, eq=False, repr=False, alias="rng")

    def wait_after(self, attempt: int) -> timedelta | None:
        """How long after attempt number ``attempt`` (1-based) the next one is; None: that
        was the last."""
        if attempt >= self.attempts:
            return None
        steps = max(self.attempts - 2, 1)
        ratio = (self.last_s / self.first_s) ** ((attempt - 1) / steps)
        seconds = min(self.first_s * ratio, self.last_s)
        return timedelta(seconds=seconds * self._rng.uniform(0.8, 1.2))

"""Rate limits at the edge, with the ``limits`` package: logins and registrations per client
address and per user name, failed admin logins per address, and the free Discord calls
(``/upload``, ``/message``) per app key.

Counters live in this process's memory by default, or in Redis
(``MJCORE_RATE_LIMIT_STORAGE=redis://…``) so that several server processes share them.
Sliding-window counters: O(1) per key, no burst of twice the limit at a window's edge.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import math
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING

from attrs import define
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from starlette.requests import Request

from .settings import Rate, Settings

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool

log = logging.getLogger("mjcore.ratelimit")
KEY_PREFIX = "mjcore"


class RateLimited(Exception):
    """Over a rate limit; the surface answers 429 with ``Retry-After``."""

    def __init__(self, retry_after: int, rule: str = "") -> None:
        super().__init__(f"too many requests; retry in {retry_after} s")
        self.retry_after = retry_after
        self.rule = rule  # which limit (Rule's value)


class RateLimitStorageUnavailable(Exception):
    """The configured rate-limit storage (Redis) did not answer at start-up."""


class Rule(enum.Enum):
    """What is counted, and per what."""

    LOGIN_ADDRESS = "login-address"
    LOGIN_NAME = "login-name"
    REGISTER_ADDRESS = "register-address"
    REGISTER_NAME = "register-name"
    ADMIN_FAILURE = "admin-failure-address"
    UPLOAD = "upload-key"
    MESSAGE = "message-key"


class ThrottledMemoryStorage(MemoryStorage):
    """limits' memory storage, sweeping expired keys at most once per ``SWEEP_S``.

    The library sweeps after every event-loop turn that counted a hit, reading the clock
    once per key: with the keys of many client addresses and user names alive (40,000:
    ~5 ms a turn), a distributed login storm would slow every request. Expired counters
    are still never read (each is checked when used); the sweep only frees their memory.
    """

    SWEEP_S = 1.0
    _swept_at = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 (the base's private hook)
        now = time.monotonic()
        if now - self._swept_at >= self.SWEEP_S:
            self._swept_at = now
            await MemoryStorage._MemoryStorage__schedule_expiry(self)  # type: ignore[attr-defined]


def client_address(request: Request) -> str:
    """The client's address as uvicorn saw it: ``X-Forwarded-For`` is applied by uvicorn
    (``proxy_headers``) only when the peer is one of ``--forwarded-allow-ips``."""
    return request.client.host if request.client is not None else "unknown"


def _item(rate: Rate) -> RateLimitItem:
    return RateLimitItemPerSecond(rate.count, rate.seconds)


def _name_key(user_name: str) -> str:
    # names are the attacker's text: keep them out of storage keys (and out of Redis)
    return hashlib.sha256(user_name.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@define
class RateLimits:
    """The edge's rate limits; each check raises :class:`RateLimited` when over."""

    limiter: SlidingWindowCounterRateLimiter
    rules: Mapping[Rule, RateLimitItem]
    pool: ConnectionPool | None = None  # Redis connections, closed with the app

    async def aclose(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()

    async def hit(self, rule: Rule, key: str) -> None:
        """Count one request against ``rule`` for ``key``; :class:`RateLimited` if over."""
        await self._enforce(rule, key, count=True)

    async def check(self, rule: Rule, key: str) -> None:
        """:class:`RateLimited` if ``key`` is already over ``rule``; counts nothing."""
        await self._enforce(rule, key, count=False)

    async def _enforce(self, rule: Rule, key: str, *, count: bool) -> None:
        item = self.rules[rule]
        try:
            check = self.limiter.hit if count else self.limiter.test
            if await check(item, rule.value, key):
                return
            stats = await self.limiter.get_window_stats(item, rule.value, key)
        except StorageError as exc:  # fail open: a storage outage must not lock everyone out
            error = str(exc.storage_error)
            log.warning("ratelimit.storage_failed", extra={"rule": rule.value, "error": error})
            return
        raise RateLimited(max(1, math.ceil(stats.reset_time - time.time())), rule.value)

    async def login(self, address: str, user_name: str) -> None:
        """Every login attempt counts, per address and per name (each costs a scrypt)."""
        await self.hit(Rule.LOGIN_ADDRESS, address)
        await self.hit(Rule.LOGIN_NAME, _name_key(user_name))

    async def register(self, address: str, user_name: str) -> None:
        await self.hit(Rule.REGISTER_ADDRESS, address)
        await self.hit(Rule.REGISTER_NAME, _name_key(user_name))

    async def admin_allowed(self, address: str) -> None:
        """:class:`RateLimited` once an address has failed admin logins too often."""
        await self.check(Rule.ADMIN_FAILURE, address)

    async def admin_failed(self, address: str) -> None:
        """Count a failed admin login (the one that goes over still answers 401)."""
        with suppress(RateLimited):
            await self.hit(Rule.ADMIN_FAILURE, address)

    async def free_call(self, rule: Rule, account_id: int) -> None:
        """``/upload`` and ``/message`` cost nothing, so they are counted per app key."""
        await self.hit(rule, str(account_id))


async def open_rate_limits(settings: Settings) -> RateLimits:
    """The storage named by ``MJCORE_RATE_LIMIT_STORAGE`` and the rules of the settings."""
    url = settings.rate_limit_storage
    pool = None
    storage: Storage
    if url.startswith("memory://"):
        storage = ThrottledMemoryStorage()
    else:
        from redis.asyncio import ConnectionPool

        pool = ConnectionPool.from_url(url)
        storage = RedisStorage(
            f"async+{url}",
            wrap_exceptions=True,
            implementation="redispy",  # redis-py, whose connections we can close
            key_prefix=KEY_PREFIX,
            connection_pool=pool,  # type: ignore[arg-type]  # limits passes it to redis-py
        )
    if pool is not None and not await storage.check():
        await pool.aclose()
        host = url.split("@")[-1]  # never the password
        raise RateLimitStorageUnavailable(f"cannot reach the rate-limit storage at {host}")
    rules = {
        Rule.LOGIN_ADDRESS: settings.login_rate_per_address,
        Rule.LOGIN_NAME: settings.login_rate_per_name,
        Rule.REGISTER_ADDRESS: settings.register_rate_per_address,
        Rule.REGISTER_NAME: settings.register_rate_per_name,
        Rule.ADMIN_FAILURE: settings.admin_failure_rate_per_address,
        Rule.UPLOAD: settings.upload_rate_per_key,
        Rule.MESSAGE: settings.upload_rate_per_key,
    }
    limiter = SlidingWindowCounterRateLimiter(storage)
    return RateLimits(limiter, {rule: _item(rate) for rule, rate in rules.items()}, pool)

"""The edge's rate limiter (entrypoints/ratelimit.py) on its own."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from limits.errors import StorageError

from entrypoints.ratelimit import RateLimited, RateLimits, Rule, open_rate_limits
from entrypoints.settings import Rate, Settings


async def test_over_the_limit_is_rate_limited_with_a_retry_after() -> None:
    limits = await open_rate_limits(Settings(login_rate_per_name=Rate(2, 60)))
    await limits.hit(Rule.LOGIN_NAME, "alice")
    await limits.hit(Rule.LOGIN_NAME, "alice")
    with pytest.raises(RateLimited) as caught:
        await limits.hit(Rule.LOGIN_NAME, "alice")
    await limits.hit(Rule.LOGIN_NAME, "bob")  # another key, another count
    assert 1 <= caught.value.retry_after <= 60


async def test_check_counts_nothing() -> None:
    limits = await open_rate_limits(Settings(admin_failure_rate_per_address=Rate(1, 60)))
    for _ in range(5):
        await limits.admin_allowed("10.0.0.1")
    await limits.admin_failed("10.0.0.1")
    await limits.admin_failed("10.0.0.1")  # over: counted, not raised (the answer is 401)
    with pytest.raises(RateLimited):
        await limits.admin_allowed("10.0.0.1")


async def test_many_live_keys_do_not_slow_every_hit() -> None:
    # limits' memory storage swept every key after every loop turn: ~5 ms at 40,000 keys
    limits = await open_rate_limits(Settings())
    for i in range(40_000):
        await limits.hit(Rule.LOGIN_NAME, f"name{i}")
        if i % 100 == 0:
            await asyncio.sleep(0)
    started = time.perf_counter()
    for i in range(500):
        await limits.hit(Rule.LOGIN_ADDRESS, f"10.0.{i // 250}.{i % 250}")
        await asyncio.sleep(0)  # a loop turn each, as requests come
    per_hit = (time.perf_counter() - started) / 500
    assert per_hit < 0.001, f"{per_hit * 1e6:.0f} µs per hit"


async def test_expired_counters_are_still_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = await open_rate_limits(Settings(login_rate_per_name=Rate(5, 1)))
    storage = limits.limiter.storage
    monkeypatch.setattr(type(storage), "SWEEP_S", 0.0)
    await limits.hit(Rule.LOGIN_NAME, "gone")
    assert any("gone" in key for key in storage.expirations)  # type: ignore[attr-defined]
    await asyncio.sleep(2.1)  # counters live twice their window
    await limits.hit(Rule.LOGIN_NAME, "other")
    await asyncio.sleep(0.05)  # the sweep runs as a task
    assert not any("gone" in key for key in storage.expirations)  # type: ignore[attr-defined]


class _Broken:
    async def hit(self, *args: object) -> bool:
        raise StorageError(ConnectionError("redis is down"))


async def test_a_storage_outage_lets_requests_through_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = RateLimits(_Broken(), {Rule.LOGIN_NAME: object()})  # type: ignore[arg-type,dict-item]
    with caplog.at_level(logging.WARNING, logger="mjcore.ratelimit"):
        await limits.hit(Rule.LOGIN_NAME, "alice")
    [record] = [r for r in caplog.records if r.getMessage() == "ratelimit.storage_failed"]
    assert "redis is down" in record.__dict__["error"]

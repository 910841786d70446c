"""Finding 4 of issue #9: scrypt runs in worker threads, a bounded number at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from mjcore import passwords
from mjcore.passwords import Hasher, hash_password


async def _loop_lag_while(work: asyncio.Future[Any]) -> float:
    """The longest the event loop went unserved (beyond a 5 ms sleep) until ``work`` ends."""
    worst = 0.0
    while not work.done():
        started = time.perf_counter()
        await asyncio.sleep(0.005)
        worst = max(worst, time.perf_counter() - started - 0.005)
    return worst


async def test_finding_4_scrypt_does_not_block_the_event_loop() -> None:
    hasher = Hasher(2)
    stored = hash_password("correct horse battery")
    work = asyncio.gather(*(hasher.verify("wrong guess", stored) for _ in range(8)))

    lag = await _loop_lag_while(work)
    started = time.perf_counter()
    hash_password("one more, timed on this machine as loaded as it is now")
    one = time.perf_counter() - started

    assert await work == [False] * 8
    # on the loop, the eight hashes would run back to back: a stall of 8 scrypts (each ~50 ms
    # on an idle machine); in threads the loop only waits for a core, a fraction of one
    assert lag < 3 * one, f"the loop stalled {lag * 1000:.0f} ms (one scrypt: {one * 1000:.0f})"


async def test_finding_4_at_most_concurrency_hashes_run_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def slow_hash(password: str) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return "scrypt$..."

    monkeypatch.setattr(passwords, "hash_password", slow_hash)
    hasher = Hasher(3)

    hashes = await asyncio.gather(*(hasher.hash(f"password{i}") for i in range(12)))

    assert hashes == ["scrypt$..."] * 12
    assert peak == 3


async def test_hasher_hashes_verify() -> None:
    hasher = Hasher(1)
    stored = await hasher.hash("correct horse battery")
    assert await hasher.verify("correct horse battery", stored)
    assert not await hasher.verify("correct horse batterx", stored)

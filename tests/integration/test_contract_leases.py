"""Contract: named leases on every store: one holder at a time, renewal, expiry, release."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from mjcore.ports import Store

from ..support import FakeClock

TTL = timedelta(seconds=20)


async def _acquire(store: Store, clock: FakeClock, holder: str, name: str = "listener:1") -> bool:
    async with store.unit_of_work() as uow:
        held = await uow.leases.acquire(name, holder, clock(), clock() + TTL)
        await uow.commit()
    return held


async def _holder(store: Store, clock: FakeClock) -> str | None:
    async with store.unit_of_work(readonly=True) as uow:
        return await uow.leases.holder("listener:1", clock())


async def test_one_holder_until_it_expires_then_another(store: Store, clock: FakeClock) -> None:
    assert await _holder(store, clock) is None
    assert await _acquire(store, clock, "a")
    assert await _holder(store, clock) == "a"
    assert not await _acquire(store, clock, "b")
    clock.advance(seconds=15)
    assert await _acquire(store, clock, "a")  # renewed: 20 s from now
    clock.advance(seconds=15)
    assert not await _acquire(store, clock, "b")
    clock.advance(seconds=6)  # a went quiet: its lease ran out
    assert await _holder(store, clock) is None
    assert await _acquire(store, clock, "b")
    assert await _holder(store, clock) == "b"
    assert not await _acquire(store, clock, "a")
    assert await _acquire(store, clock, "a", name="listener:2")  # names are independent


async def test_a_released_lease_is_free_at_once(store: Store, clock: FakeClock) -> None:
    assert await _acquire(store, clock, "a")
    async with store.unit_of_work() as uow:
        await uow.leases.release("listener:1", "b")  # not b's: nothing happens
        await uow.commit()
    assert not await _acquire(store, clock, "b")
    async with store.unit_of_work() as uow:
        await uow.leases.release("listener:1", "a")
        await uow.commit()
    assert await _acquire(store, clock, "b")


async def test_of_many_racing_for_a_free_lease_exactly_one_wins(
    store: Store, clock: FakeClock
) -> None:
    results = await asyncio.gather(*(_acquire(store, clock, f"p{i}") for i in range(20)))
    assert results.count(True) == 1

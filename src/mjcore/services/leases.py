"""Leases: one holder of a named duty (the Discord listener of a channel) across processes."""

from __future__ import annotations

from datetime import timedelta

from attrs import define

from ..clock import Clock
from ..ports import Store


@define
class Lease:
    """``holder``'s claim on ``name``, renewed by calling :meth:`hold` well within ``ttl_s``.

    If the holder stops renewing (it died), another process's :meth:`hold` succeeds once
    ``ttl_s`` has passed since the last renewal.
    """

    store: Store
    clock: Clock
    name: str
    holder: str
    ttl_s: float

    async def hold(self) -> bool:
        """Take or renew the lease; True while this holder has it."""
        now = self.clock()
        async with self.store.unit_of_work() as uow:
            held = await uow.leases.acquire(
                self.name, self.holder, now, now + timedelta(seconds=self.ttl_s)
            )
            await uow.commit()
        return held

    async def current_holder(self) -> str | None:
        async with self.store.unit_of_work(readonly=True) as uow:
            return await uow.leases.holder(self.name, self.clock())

    async def release(self) -> None:
        """Give it up now (a clean shutdown), so a standby need not wait for the expiry."""
        async with self.store.unit_of_work() as uow:
            await uow.leases.release(self.name, self.holder)
            await uow.commit()

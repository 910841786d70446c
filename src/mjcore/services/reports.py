"""Read-only reports: service totals and the ledger invariant."""

from __future__ import annotations

from ..ledger import LedgerReport, report
from ..ports import Counts, Store


async def stats(store: Store) -> Counts:
    async with store.unit_of_work(readonly=True) as uow:
        return await uow.stats.counts()


async def verify_ledger(store: Store) -> LedgerReport:
    """Check that every account's counters equal the sums of its ledger entries."""
    async with store.unit_of_work(readonly=True) as uow:
        return report(await uow.ledger.tallies())

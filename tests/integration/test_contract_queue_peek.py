"""Contract: ``QueueRepository.peek`` on every store reads the committed counters without
waiting for the queue's lock (what the metrics read at every scrape)."""

from __future__ import annotations

import asyncio

from mjcore.ports import QueueCounts, Store
from mjcore.services import reports
from mjcore.tasks import Provider

MJ = Provider.MIDJOURNEY


async def test_peek_reads_the_committed_counters_while_a_writer_holds_the_lock(
    store: Store,
) -> None:
    async with store.unit_of_work() as writer:
        await writer.queue.lock(MJ)
        await writer.queue.change(MJ, running=2, waiting=1)
        async with asyncio.timeout(5), store.unit_of_work(readonly=True) as reader:
            during = await reader.queue.peek(MJ)  # neither waits nor sees uncommitted work
        await writer.commit()
    async with store.unit_of_work(readonly=True) as reader:
        after = await reader.queue.peek(MJ)
    observed = await reports.observed(store)

    assert during == QueueCounts(0, 0)
    assert after == QueueCounts(2, 1) == observed.queues[MJ]


async def test_a_provider_without_a_queue_peeks_empty(store: Store) -> None:
    async with store.unit_of_work(readonly=True) as reader:
        assert await reader.queue.peek(Provider.FIREWORKS) == QueueCounts(0, 0)

"""Delivering the outbox: claim what is due, send it, record each attempt, retry, give up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from attrs import define, field

from .. import events
from ..clock import Clock
from ..ports import Store, WebhookSender
from ..tasks import Task
from ..webhooks import Delivery, DeliveryStatus, Outcome, RetryPolicy

log = logging.getLogger("mjcore.webhooks")
_OUTCOMES = {
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.PENDING: "retry",
    DeliveryStatus.DEAD: "failed",
    DeliveryStatus.GONE: "gone",
}
Render = Callable[[Delivery, Task], str]
"""The body a hook receives for an event of a task (the edge knows the client's shapes)."""


@define
class WebhookService:
    store: Store
    clock: Clock
    sender: WebhookSender
    render: Render
    policy: RetryPolicy = field(factory=RetryPolicy)
    batch: int = 50
    attempt_s: float = 10.0  # an attempt's deadline; a claim outlives it, then may be retaken

    async def deliver_due(self) -> int:
        """Send every delivery due now (a batch); how many were attempted."""
        now = self.clock()
        lease_until = now + timedelta(seconds=2 * self.attempt_s + 5)
        async with self.store.unit_of_work() as uow:
            claimed = await uow.webhooks.claim(now, lease_until, self.batch)
            await uow.commit()
        await asyncio.gather(*(self._attempt(d) for d in claimed))
        return len(claimed)

    async def _attempt(self, delivery: Delivery) -> None:
        assert delivery.id is not None
        payload = delivery.payload
        if payload is None:  # the first attempt fixes the body; retries send it again
            async with self.store.unit_of_work() as uow:
                task = await uow.tasks.get(delivery.task_id)
                if task is not None:
                    payload = await uow.webhooks.fix_payload(
                        delivery.id, self.render(delivery, task)
                    )
                await uow.commit()
            if payload is None:
                await self._record(delivery, Outcome(error="the task is gone"), "", None)
                return
        outcome = await self.sender.send(delivery.url, delivery.webhook_id, payload)
        await self._record(delivery, outcome, payload, self.policy.wait_after(delivery.attempts))

    async def _record(
        self, delivery: Delivery, outcome: Outcome, payload: str, wait: timedelta | None
    ) -> None:
        """Write the attempt: delivered, gone (410), pending again after ``wait``, or dead."""
        assert delivery.id is not None
        now = self.clock()
        if outcome.delivered:
            status = DeliveryStatus.DELIVERED
        elif outcome.gone:
            status = DeliveryStatus.GONE
        else:
            status = DeliveryStatus.DEAD if wait is None else DeliveryStatus.PENDING
        next_at = now + wait if status is DeliveryStatus.PENDING and wait else now
        async with self.store.unit_of_work() as uow:
            kept = await uow.webhooks.record(
                delivery.id, delivery.attempts, outcome, status, next_at, now, payload
            )
            await uow.commit()
        events.webhook_delivery(
            _OUTCOMES[status],
            webhook_id=delivery.webhook_id,
            task_id=delivery.task_id,
            attempt=delivery.attempts,
            host=_host(delivery.url),
            status=outcome.status,
            error=outcome.error,
        )
        if not kept:  # taken again meanwhile (this attempt outlived its claim)
            log.warning(
                "webhook %s: attempt %d came too late", delivery.webhook_id, delivery.attempts
            )


def _host(url: str) -> str:
    """Where a hook points, for the log: the host only (paths and queries may hold tokens)."""
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]

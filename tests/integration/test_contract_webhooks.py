"""Contract: the webhook outbox on every store: written with the transition, coalesced,
claimed once however many claim together, attempts recorded only by their claimer, retried."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta

from attrs import define, field

from mjcore.ports import Store
from mjcore.pricing import Prices
from mjcore.services import accounts, tasks
from mjcore.services.webhooks import WebhookService
from mjcore.tasks import Provider, Task, TaskStatus
from mjcore.webhooks import (
    Delivery,
    DeliveryStatus,
    Hook,
    HookStyle,
    Outcome,
    RetryPolicy,
    WebhookEvent,
    new_webhook_id,
    with_hooks,
)

from ..support import FakeClock

HOOK = "https://hooks.example/mj"
OTHER = "https://other.example/in"


async def _task(store: Store, clock: FakeClock, *hooks: str) -> Task:
    account = (
        await accounts.create_account(store, clock, f"u{random.getrandbits(40)}", 50)
    ).account
    draft = tasks.draft_task(
        clock,
        Prices(),
        account_id=account.id,
        provider=Provider.MIDJOURNEY,
        action="imagine",
        prompt="a red fox",
        params=with_hooks({}, [Hook(url) for url in hooks]),
    )
    return await tasks.reserve_task(store, draft, started=True)


async def _deliveries(store: Store, task_id: str | None = None) -> list[Delivery]:
    async with store.unit_of_work(readonly=True) as uow:
        found = await uow.webhooks.list(task_id=task_id, statuses=None, limit=1000)
    return sorted(found, key=lambda d: d.id or 0)


async def _claim(store: Store, clock: FakeClock, limit: int = 50) -> list[Delivery]:
    async with store.unit_of_work() as uow:
        claimed = await uow.webhooks.claim(clock(), clock() + timedelta(seconds=30), limit)
        await uow.commit()
    return list(claimed)


async def test_each_transition_puts_one_delivery_per_hook_in_the_outbox(
    store: Store, clock: FakeClock
) -> None:
    task = await _task(store, clock, HOOK, OTHER)
    assert await _deliveries(store) == []  # accepting a job is no event

    await tasks.advance_task(store, clock, task.task_id, TaskStatus.IN_PROGRESS, progress=0)
    await tasks.advance_task(
        store, clock, task.task_id, TaskStatus.SUCCESS, image_url="https://i/1"
    )

    found = await _deliveries(store, task.task_id)
    assert sorted((d.event, d.url) for d in found) == [
        (WebhookEvent.STARTED, HOOK),
        (WebhookEvent.STARTED, OTHER),
        (WebhookEvent.SUCCEEDED, HOOK),
        (WebhookEvent.SUCCEEDED, OTHER),
    ]
    assert len({d.webhook_id for d in found}) == 4
    assert all(d.status is DeliveryStatus.PENDING and d.attempts == 0 for d in found)
    assert all(d.style is HookStyle.MJCORE and d.payload is None for d in found)


async def test_a_failure_is_an_event_and_a_task_without_hooks_sends_nothing(
    store: Store, clock: FakeClock
) -> None:
    hooked = await _task(store, clock, HOOK)
    quiet = await _task(store, clock)

    await tasks.fail_task(store, clock, hooked.task_id, "Midjourney said no")
    await tasks.fail_task(store, clock, quiet.task_id, "Midjourney said no")
    await tasks.fail_task(store, clock, hooked.task_id, "a late duplicate")  # no new event

    assert [d.event for d in await _deliveries(store)] == [WebhookEvent.FAILED]


async def test_a_rolled_back_transition_leaves_no_delivery(store: Store, clock: FakeClock) -> None:
    task = await _task(store, clock, HOOK)

    async with store.unit_of_work() as uow:
        current = await tasks.locked(uow, task.task_id)
        await tasks.move_in(uow, current, TaskStatus.IN_PROGRESS, clock(), progress=5)
        # no commit: the transition and its delivery go together

    assert await _deliveries(store) == []
    assert (await tasks.get_task(store, task.task_id)).status is TaskStatus.SUBMITTED


async def test_progress_waiting_for_its_first_attempt_is_not_queued_twice(
    store: Store, clock: FakeClock
) -> None:
    task = await _task(store, clock, HOOK)
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.IN_PROGRESS, progress=0)
    for percent in (10, 31, 62):
        await tasks.advance_task(
            store, clock, task.task_id, TaskStatus.IN_PROGRESS, progress=percent
        )

    events = [d.event for d in await _deliveries(store)]
    assert events == [WebhookEvent.STARTED, WebhookEvent.PROGRESS]  # the one will say 62 %

    await _claim(store, clock)  # sent (or being sent): newer progress needs a new one
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.IN_PROGRESS, progress=90)
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.IN_PROGRESS, progress=95)

    events = [d.event for d in await _deliveries(store)]
    assert events == [WebhookEvent.STARTED, WebhookEvent.PROGRESS, WebhookEvent.PROGRESS]


async def test_a_claim_takes_due_deliveries_oldest_first_and_leases_them(
    store: Store, clock: FakeClock
) -> None:
    first = await _task(store, clock, HOOK)
    clock.advance(seconds=1)
    second = await _task(store, clock, HOOK)
    await tasks.fail_task(store, clock, second.task_id, "no")
    clock.advance(seconds=1)
    await tasks.fail_task(store, clock, first.task_id, "no")

    claimed = await _claim(store, clock, limit=1)

    assert [(d.task_id, d.attempts) for d in claimed] == [(second.task_id, 1)]
    assert claimed[0].next_attempt_at == clock() + timedelta(seconds=30)
    assert [d.task_id for d in await _claim(store, clock)] == [first.task_id]
    assert await _claim(store, clock) == []  # both leased
    clock.advance(seconds=31)  # their claimers went quiet: the leases ran out
    assert sorted(d.attempts for d in await _claim(store, clock)) == [2, 2]


async def test_many_claiming_at_once_never_take_one_delivery_twice(
    store: Store, clock: FakeClock
) -> None:
    for _ in range(40):
        task = await _task(store, clock, HOOK)
        await tasks.fail_task(store, clock, task.task_id, "no")

    batches = await asyncio.gather(*(_claim(store, clock, limit=4) for _ in range(16)))

    taken = Counter(d.id for batch in batches for d in batch)
    assert len(taken) == 40
    assert set(taken.values()) == {1}
    assert {d.attempts for d in await _deliveries(store)} == {1}


async def test_only_the_latest_claim_may_record_its_attempt(store: Store, clock: FakeClock) -> None:
    task = await _task(store, clock, HOOK)
    await tasks.fail_task(store, clock, task.task_id, "no")
    [slow] = await _claim(store, clock)
    clock.advance(seconds=31)  # the slow attempt outlived its lease: taken again
    [again] = await _claim(store, clock)
    assert (slow.attempts, again.attempts) == (1, 2)
    assert slow.id is not None and again.id is not None

    async with store.unit_of_work() as uow:
        late = await uow.webhooks.record(
            slow.id, 1, Outcome(200), DeliveryStatus.DELIVERED, clock(), clock(), "{}"
        )
        kept = await uow.webhooks.record(
            again.id, 2, Outcome(500), DeliveryStatus.PENDING, clock(), clock(), '{"a":1}'
        )
        await uow.commit()

    assert (late, kept) == (False, True)
    [stored] = await _deliveries(store)
    assert (stored.status, stored.last_status, stored.payload) == (
        DeliveryStatus.PENDING,
        500,
        '{"a":1}',
    )


async def test_lists_filter_by_task_and_status_and_retry_revives_an_ended_delivery(
    store: Store, clock: FakeClock
) -> None:
    one = await _task(store, clock, HOOK)
    two = await _task(store, clock, HOOK)
    await tasks.fail_task(store, clock, one.task_id, "no")
    await tasks.fail_task(store, clock, two.task_id, "no")
    [dead, _] = await _claim(store, clock)
    assert dead.id is not None
    async with store.unit_of_work() as uow:
        await uow.webhooks.record(
            dead.id, 1, Outcome(None, "timeout"), DeliveryStatus.DEAD, clock(), clock(), "{}"
        )
        await uow.commit()

    async with store.unit_of_work(readonly=True) as uow:
        failed = await uow.webhooks.list(task_id=None, statuses=[DeliveryStatus.DEAD], limit=10)
        by_task = await uow.webhooks.list(task_id=two.task_id, statuses=None, limit=10)
        newest = await uow.webhooks.list(task_id=None, statuses=None, limit=1)
    assert [d.id for d in failed] == [dead.id]
    assert failed[0].last_error == "timeout"
    assert [d.task_id for d in by_task] == [two.task_id]
    assert newest[0].id == max(d.id or 0 for d in await _deliveries(store))

    clock.advance(seconds=5)
    async with store.unit_of_work() as uow:
        revived = await uow.webhooks.retry(dead.id, clock())
        pending_again = await uow.webhooks.retry(dead.id, clock())  # already pending
        await uow.commit()
    assert (revived, pending_again) == (True, False)
    stored = await _get(store, dead.id)
    assert (stored.status, stored.next_attempt_at) == (DeliveryStatus.PENDING, clock())


async def _get(store: Store, delivery_id: int) -> Delivery:
    async with store.unit_of_work(readonly=True) as uow:
        found = await uow.webhooks.get(delivery_id)
    assert found is not None
    return found


# -- the service over the outbox ----------------------------------------------------------


@define
class ScriptedReceiver:
    """:class:`mjcore.ports.WebhookSender` answering from a script (then 200)."""

    script: list[Outcome] = field(factory=list)
    seen: list[tuple[str, str, str]] = field(factory=list)

    async def send(self, url: str, webhook_id: str, payload: str) -> Outcome:
        self.seen.append((url, webhook_id, payload))
        return self.script.pop(0) if self.script else Outcome(200)


def _service(
    store: Store, clock: FakeClock, receiver: ScriptedReceiver, attempts: int
) -> WebhookService:
    policy = RetryPolicy(attempts, 10.0, 1000.0, rng=random.Random(7))
    return WebhookService(
        store,
        clock,
        receiver,
        lambda d, t: f'{{"event":"{d.event}","status":"{t.status}"}}',
        policy,
    )


async def _run_until_quiet(service: WebhookService, clock: FakeClock, rounds: int = 40) -> None:
    """Deliver what is due, then move the clock to the next attempt, until nothing is left."""
    for _ in range(rounds):
        await service.deliver_due()
        pending = [
            d for d in await _deliveries(service.store) if d.status is DeliveryStatus.PENDING
        ]
        if not pending:
            return
        clock.now = min(d.next_attempt_at for d in pending)


async def test_a_failing_receiver_gets_the_same_delivery_until_it_answers_2xx(
    store: Store, clock: FakeClock
) -> None:
    task = await _task(store, clock, HOOK)
    await tasks.fail_task(store, clock, task.task_id, "no")
    receiver = ScriptedReceiver([Outcome(500), Outcome(None, "ConnectTimeout"), Outcome(503)])
    service = _service(store, clock, receiver, attempts=10)
    start = clock()

    await _run_until_quiet(service, clock)

    assert len(receiver.seen) == 4
    assert len(set(receiver.seen)) == 1  # same URL, same webhook-id, same body every time
    assert receiver.seen[0][2] == '{"event":"task.failed","status":"FAILURE"}'
    [stored] = await _deliveries(store)
    assert (stored.status, stored.attempts, stored.last_status) == (
        DeliveryStatus.DELIVERED,
        4,
        200,
    )
    assert stored.delivered_at == clock()
    assert clock() - start >= timedelta(seconds=8 + 10 + 20)  # the waits grew, with jitter


async def test_the_body_is_fixed_at_the_first_attempt(store: Store, clock: FakeClock) -> None:
    task = await _task(store, clock, HOOK)
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.IN_PROGRESS, progress=0)
    receiver = ScriptedReceiver([Outcome(500)])
    service = _service(store, clock, receiver, attempts=3)
    await service.deliver_due()
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.SUCCESS, image_url="https://i")

    await _run_until_quiet(service, clock)

    bodies = [(body, url) for url, _, body in receiver.seen]
    started = '{"event":"task.started","status":"IN_PROGRESS"}'
    assert bodies.count((started, HOOK)) == 2  # the retry says what the first attempt said
    assert ('{"event":"task.succeeded","status":"SUCCESS"}', HOOK) in bodies


async def test_an_attempt_that_never_recorded_is_made_again_with_the_same_body(
    store: Store, clock: FakeClock
) -> None:
    task = await _task(store, clock, HOOK)
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.IN_PROGRESS, progress=0)
    [crashed] = await _claim(store, clock)  # sent, then the process died before recording
    assert crashed.id is not None
    async with store.unit_of_work() as uow:
        first = await uow.webhooks.fix_payload(crashed.id, '{"said":"first"}')
        again = await uow.webhooks.fix_payload(crashed.id, '{"said":"later"}')
        await uow.commit()
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.SUCCESS, image_url="https://i")
    clock.advance(seconds=31)  # the lease ran out: the attempt is made again
    receiver = ScriptedReceiver()

    await _run_until_quiet(_service(store, clock, receiver, attempts=3), clock)

    assert first == again == '{"said":"first"}'
    assert [body for url, _, body in receiver.seen if '"said"' in body] == ['{"said":"first"}']


async def test_410_stops_and_the_last_failure_is_a_dead_letter(
    store: Store, clock: FakeClock
) -> None:
    gone = await _task(store, clock, HOOK)
    dead = await _task(store, clock, OTHER)
    await tasks.fail_task(store, clock, gone.task_id, "no")
    await tasks.fail_task(store, clock, dead.task_id, "no")

    class Receiver(ScriptedReceiver):
        async def send(self, url: str, webhook_id: str, payload: str) -> Outcome:
            self.seen.append((url, webhook_id, payload))
            return Outcome(410) if url == HOOK else Outcome(502)

    receiver = Receiver()
    await _run_until_quiet(_service(store, clock, receiver, attempts=3), clock)

    assert Counter(url for url, _, _ in receiver.seen) == {HOOK: 1, OTHER: 3}
    status = {d.url: (d.status, d.attempts) for d in await _deliveries(store)}
    assert status == {HOOK: (DeliveryStatus.GONE, 1), OTHER: (DeliveryStatus.DEAD, 3)}


async def test_a_delivery_of_a_vanished_task_ends_without_a_request(
    store: Store, clock: FakeClock
) -> None:
    async with store.unit_of_work() as uow:
        await uow.webhooks.add(
            Delivery(
                new_webhook_id(),
                "no-such-task",
                WebhookEvent.FAILED,
                HOOK,
                HookStyle.MJCORE,
                clock(),
                clock(),
            )
        )
        await uow.commit()
    receiver = ScriptedReceiver()

    await _run_until_quiet(_service(store, clock, receiver, attempts=2), clock)

    assert receiver.seen == []
    [stored] = await _deliveries(store)
    assert (stored.status, stored.last_error) == (DeliveryStatus.DEAD, "the task is gone")

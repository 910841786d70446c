"""The one task lifecycle every provider uses: open (debit + record), move, end (success,
or failure refunded exactly once), and what settles tasks that never end by themselves.

The ``*_in`` functions work inside a unit of work the caller holds (Midjourney holds its
queue's lock around them); the others open their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from attrs import evolve, frozen

from .. import events
from ..clock import Clock
from ..errors import InvalidTransition, TaskNotFound
from ..limits import Whole
from ..ports import Store, TaskQuery, UnitOfWork
from ..pricing import Prices
from ..tasks import TASK_ID, FailureKind, Provider, Task, TaskStatus, new_task_id
from ..webhooks import Delivery, WebhookEvent, event_for, hooks_of, new_webhook_id
from . import credits
from .idempotency import Guard

MAX_PAGE = 100
PAGE_LIMIT = Whole("limit", 1, MAX_PAGE)
PAGE_OFFSET = Whole("offset", 0, 10**9)
STALE_BATCH = 100


@frozen
class TaskPage:
    tasks: tuple[Task, ...]
    total: int


@frozen
class Failure:
    """Why a task ends without a result: words for people, a kind for programs."""

    reason: str
    kind: FailureKind = FailureKind.ERROR


def task_reference(task_id: str) -> str:
    return f"task:{task_id}"


def draft_task(
    clock: Clock,
    prices: Prices,
    *,
    account_id: int,
    provider: Provider,
    action: str,
    prompt: str = "",
    params: Mapping[str, Any] | None = None,
    parent_task_id: str | None = None,
    trigger_id: str | None = None,
) -> Task:
    """A job priced and named, not yet accepted."""
    return Task(
        task_id=new_task_id(),
        account_id=account_id,
        provider=provider,
        action=action,
        prompt=prompt,
        cost=prices.of(action),
        created_at=clock(),
        params=params or {},
        parent_task_id=parent_task_id,
        trigger_id=trigger_id,
    )


async def open_in(uow: UnitOfWork, task: Task) -> None:
    """Accept a job: debit its price and record it, in the caller's transaction.

    Raises :class:`~mjcore.errors.InsufficientCredits` (nothing written) when the
    balance is below the price.
    """
    reference = task_reference(task.task_id)
    await credits.debit(uow, task.account_id, task.cost, reference, task.created_at)
    await uow.tasks.add(task)
    events.task_created(task)


async def locked(uow: UnitOfWork, task_id: str) -> Task:
    task = await uow.tasks.get(task_id, for_update=True)
    if task is None:
        raise TaskNotFound(f"no task {task_id}")
    return task


async def move_in(
    uow: UnitOfWork, current: Task, to: TaskStatus, now: datetime, **changes: Any
) -> Task:
    """Move a task forward (not to ``FAILURE``: :func:`end_in` refunds that)."""
    if to is TaskStatus.FAILURE:
        raise InvalidTransition("failures end through end_in, so the refund cannot be missed")
    task = current.advance(to, now, **changes)
    if not await uow.tasks.save(task, expected=current.status):
        raise InvalidTransition(f"task {current.task_id} changed concurrently")
    events.task_moved(current, task)
    await notify_in(uow, current, task, now)
    return task


async def end_in(
    uow: UnitOfWork,
    current: Task,
    now: datetime,
    failure: Failure | None = None,
    **changes: Any,
) -> Task:
    """End a task: ``SUCCESS`` with ``changes``, or ``FAILURE`` refunded exactly once.

    The caller has checked that ``current`` has not ended (and holds its row lock).
    """
    if failure is None:
        return await move_in(uow, current, TaskStatus.SUCCESS, now, **changes)
    result = dict(current.result) | {"failure": failure.kind.value}
    task = current.advance(TaskStatus.FAILURE, now, fail_reason=failure.reason, result=result)
    if not await uow.tasks.save(task, expected=current.status):
        raise InvalidTransition(f"task {current.task_id} changed concurrently")
    events.task_moved(current, task)
    if await refund_once(uow, task, now):
        task = evolve(task, refunded=True)
    await notify_in(uow, current, task, now)
    return task


async def notify_in(uow: UnitOfWork, before: Task, after: Task, now: datetime) -> None:
    """Put the transition's event for each of the task's hooks in the outbox, in the
    transition's own transaction (a crash never loses one, a rollback never sends one)."""
    event = event_for(before, after)
    if event is None:
        return
    for hook in hooks_of(after):
        delivery = Delivery(new_webhook_id(), after.task_id, event, hook.url, hook.style, now, now)
        if event is WebhookEvent.PROGRESS:  # the newest waiting one will say it
            await uow.webhooks.add_progress(delivery)
        else:
            await uow.webhooks.add(delivery)


async def annotate_task(store: Store, task_id: str, **changes: Any) -> Task | None:
    """Change what a task shows, not where it is (our copy of its image, made after it
    succeeded); None if it moved meanwhile."""
    async with store.unit_of_work() as uow:
        current = await locked(uow, task_id)
        task = evolve(current, **changes)
        if not await uow.tasks.save(task, expected=current.status):
            return None
        await uow.commit()
    return task


async def refund_once(uow: UnitOfWork, task: Task, now: datetime) -> bool:
    """Refund the task's cost unless it already was; True for the one call that did."""
    if task.cost <= 0 or not await uow.tasks.mark_refunded(task.task_id):
        return False
    await credits.refund(uow, task.account_id, task.cost, task_reference(task.task_id), now)
    events.task_refunded(task)
    return True


# -- the same steps, each in its own unit of work -------------------------------------------


async def reserve_task(
    store: Store, draft: Task, *, started: bool = False, guard: Guard | None = None
) -> Task:
    """Accept a job (a :func:`draft_task`): debit its price and record it in one transaction.

    ``started`` records it as ``SUBMITTED`` at once (a job that runs now, with no queue):
    a task is never left ``NOT_START`` with nothing to start it, whatever crashes when.
    ``guard`` runs first in the transaction (an Idempotency-Key's claim).
    """
    task = draft.advance(TaskStatus.SUBMITTED, draft.created_at) if started else draft
    async with store.unit_of_work() as uow:
        if guard is not None:
            await guard(uow)
        await open_in(uow, task)
        await uow.commit()
    return task


async def advance_task(
    store: Store, clock: Clock, task_id: str, to: TaskStatus, **changes: Any
) -> Task:
    """Move a task forward (``SUBMITTED``, ``IN_PROGRESS``, progress, ``SUCCESS``).

    Raises :class:`InvalidTransition` if the task already ended or would move back.
    Use :func:`fail_task` for failures, so the refund cannot be forgotten.
    """
    async with store.unit_of_work() as uow:
        task = await move_in(uow, await locked(uow, task_id), to, clock(), **changes)
        await uow.commit()
    return task


async def fail_task(
    store: Store, clock: Clock, task_id: str, reason: str, kind: FailureKind = FailureKind.ERROR
) -> Task:
    """End a task without result and refund its cost, exactly once.

    Failing a task that already ended changes nothing and returns it as it is, so a
    duplicated or late failure event is harmless.
    """
    async with store.unit_of_work() as uow:
        current = await locked(uow, task_id)
        if current.status.terminal:
            return current
        task = await end_in(uow, current, clock(), Failure(reason, kind))
        await uow.commit()
    return task


async def refund_task(store: Store, clock: Clock, task_id: str) -> bool:
    """Refund a task's reservation if it was not refunded yet; True if this call did."""
    async with store.unit_of_work() as uow:
        task = await locked(uow, task_id)
        refunded = await refund_once(uow, task, clock())
        await uow.commit()
    return refunded


async def get_task(store: Store, task_id: str, *, account_id: int | None = None) -> Task:
    """The task; with ``account_id``, only if it is that account's."""
    if not TASK_ID.allows(task_id):  # no such id can exist: no need to ask (NUL, 5 kB...)
        raise TaskNotFound(f"no task {task_id!r}")
    async with store.unit_of_work(readonly=True) as uow:
        task = await uow.tasks.get(task_id)
    if task is None or (account_id is not None and task.account_id != account_id):
        raise TaskNotFound(f"no task {task_id}")
    return task


async def list_tasks(
    store: Store,
    account_id: int | None,
    *,
    status: TaskStatus | None = None,
    limit: int = 20,
    offset: int = 0,
) -> TaskPage:
    """One account's tasks (all accounts' with ``None``), newest first, and their total."""
    PAGE_LIMIT.check(limit)
    PAGE_OFFSET.check(offset)
    query = TaskQuery(account_id, status, limit, offset)
    async with store.unit_of_work(readonly=True) as uow:
        tasks = await uow.tasks.query(query)
        total = await uow.tasks.count(query)
    return TaskPage(tuple(tasks), total)


@frozen
class Deadlines:
    """When a running task is given up: ``idle_s`` after its last event, or ``max_s`` after
    it started, whichever comes first."""

    idle_s: float
    max_s: float

    def overdue(self, task: Task, now: datetime) -> Failure | None:
        """Why ``task`` is overdue at ``now``, or None."""
        started = task.started_at or task.created_at
        if now - started > timedelta(seconds=self.max_s):
            return Failure(f"timed out: not done {self.max_s:g} s after it started", _TIMEOUT)
        if now - (task.last_event_at or started) > timedelta(seconds=self.idle_s):
            return Failure(f"timed out: no word from the provider for {self.idle_s:g} s", _TIMEOUT)
        return None


_TIMEOUT = FailureKind.TIMEOUT


async def overdue_tasks(
    store: Store, clock: Clock, provider: Provider, deadlines: Deadlines
) -> list[tuple[Task, Failure]]:
    """Running tasks of ``provider`` past a deadline, with why (a batch at a time)."""
    now = clock()
    idle_cutoff = now - timedelta(seconds=deadlines.idle_s)
    max_cutoff = now - timedelta(seconds=deadlines.max_s)
    async with store.unit_of_work(readonly=True) as uow:
        found = await uow.tasks.stale(provider, idle_cutoff, max_cutoff, STALE_BATCH)
    return [
        (task, failure) for task in found if (failure := deadlines.overdue(task, now)) is not None
    ]


async def fail_stale(store: Store, clock: Clock, provider: Provider, deadlines: Deadlines) -> int:
    """Fail and refund ``provider``'s overdue tasks (what a crash left behind, too)."""
    overdue = await overdue_tasks(store, clock, provider, deadlines)
    for task, failure in overdue:
        await fail_task(store, clock, task.task_id, failure.reason, failure.kind)
    return len(overdue)

"""Task use cases: reserve (debit + create), advance, fail with an exactly-once refund, list."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from attrs import frozen

from ..clock import Clock
from ..errors import InvalidAmount, InvalidTransition, TaskNotFound
from ..ports import Store, TaskQuery, UnitOfWork
from ..pricing import Prices
from ..tasks import Provider, Task, TaskStatus, new_task_id
from . import credits

MAX_PAGE = 100
STALE_BATCH = 100


@frozen
class TaskPage:
    tasks: tuple[Task, ...]
    total: int


def task_reference(task_id: str) -> str:
    return f"task:{task_id}"


async def reserve_task(
    store: Store,
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
    """Accept a job: debit its price and record the task in one transaction.

    Raises :class:`~mjcore.errors.InsufficientCredits` (nothing written) when the
    balance is below the price.
    """
    now = clock()
    task = Task(
        task_id=new_task_id(),
        account_id=account_id,
        provider=provider,
        action=action,
        prompt=prompt,
        cost=prices.of(action),
        created_at=now,
        params=params or {},
        parent_task_id=parent_task_id,
        trigger_id=trigger_id,
    )
    async with store.unit_of_work() as uow:
        await credits.debit(uow, account_id, task.cost, task_reference(task.task_id), now)
        await uow.tasks.add(task)
        await uow.commit()
    return task


async def _locked(uow: UnitOfWork, task_id: str) -> Task:
    task = await uow.tasks.get(task_id, for_update=True)
    if task is None:
        raise TaskNotFound(f"no task {task_id}")
    return task


async def refund_once(uow: UnitOfWork, task: Task, now: datetime) -> bool:
    """Refund the task's cost unless it already was; True for the one call that did."""
    if task.cost <= 0 or not await uow.tasks.mark_refunded(task.task_id):
        return False
    await credits.refund(uow, task.account_id, task.cost, task_reference(task.task_id), now)
    return True


async def advance_task(
    store: Store, clock: Clock, task_id: str, to: TaskStatus, **changes: Any
) -> Task:
    """Move a task forward (``SUBMITTED``, ``IN_PROGRESS``, progress, ``SUCCESS``).

    Raises :class:`InvalidTransition` if the task already ended or would move back.
    Use :func:`fail_task` for failures, so the refund cannot be forgotten.
    """
    if to is TaskStatus.FAILURE:
        raise InvalidTransition("use fail_task for failures")
    async with store.unit_of_work() as uow:
        current = await _locked(uow, task_id)
        task = current.advance(to, clock(), **changes)
        if not await uow.tasks.save(task, expected=current.status):
            raise InvalidTransition(f"task {task_id} changed concurrently")
        await uow.commit()
    return task


async def fail_task(store: Store, clock: Clock, task_id: str, reason: str) -> Task:
    """End a task without result and refund its cost, exactly once.

    Failing a task that already ended changes nothing and returns it as it is, so a
    duplicated or late failure event is harmless.
    """
    async with store.unit_of_work() as uow:
        current = await _locked(uow, task_id)
        if current.status.terminal:
            return current
        task = current.advance(TaskStatus.FAILURE, clock(), fail_reason=reason)
        if not await uow.tasks.save(task, expected=current.status):
            raise InvalidTransition(f"task {task_id} changed concurrently")
        await refund_once(uow, task, clock())
        await uow.commit()
    return await get_task(store, task_id)


async def refund_task(store: Store, clock: Clock, task_id: str) -> bool:
    """Refund a task's reservation if it was not refunded yet; True if this call did."""
    async with store.unit_of_work() as uow:
        task = await _locked(uow, task_id)
        refunded = await refund_once(uow, task, clock())
        await uow.commit()
    return refunded


async def get_task(store: Store, task_id: str, *, account_id: int | None = None) -> Task:
    """The task; with ``account_id``, only if it is that account's."""
    async with store.unit_of_work(readonly=True) as uow:
        task = await uow.tasks.get(task_id)
    if task is None or (account_id is not None and task.account_id != account_id):
        raise TaskNotFound(f"no task {task_id}")
    return task


def check_page(limit: int, offset: int = 0) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidAmount(f"limit must be from 1 to {MAX_PAGE}")
    if offset < 0:
        raise InvalidAmount("offset must be 0 or more")


async def list_tasks(
    store: Store,
    account_id: int | None,
    *,
    status: TaskStatus | None = None,
    limit: int = 20,
    offset: int = 0,
) -> TaskPage:
    """One account's tasks (all accounts' with ``None``), newest first, and their total."""
    check_page(limit, offset)
    query = TaskQuery(account_id, status, limit, offset)
    async with store.unit_of_work(readonly=True) as uow:
        tasks = await uow.tasks.query(query)
        total = await uow.tasks.count(query)
    return TaskPage(tuple(tasks), total)


async def fail_stale(
    store: Store, clock: Clock, provider: Provider, older_than_s: float, reason: str
) -> int:
    """Fail and refund ``provider``'s tasks started more than ``older_than_s`` ago.

    What a crash left behind (a debit whose job never ended) is settled this way.
    """
    cutoff = clock() - timedelta(seconds=older_than_s)
    async with store.unit_of_work(readonly=True) as uow:
        stale = await uow.tasks.unfinished_started_before(provider, cutoff, STALE_BATCH)
    for task in stale:
        await fail_task(store, clock, task.task_id, reason)
    return len(stale)

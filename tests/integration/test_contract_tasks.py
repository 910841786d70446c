"""Contract: tasks round-trip, move forward only, and are listed per account only."""

from __future__ import annotations

import pytest

from mjcore.errors import InvalidAmount, InvalidTransition, TaskNotFound
from mjcore.ports import Store
from mjcore.pricing import Prices
from mjcore.services import accounts, reports, tasks
from mjcore.tasks import FailureKind, Provider, Task, TaskStatus

from ..support import FakeClock


async def _reserve(store: Store, clock: FakeClock, account_id: int, **extra: object) -> Task:
    started = bool(extra.pop("started", False))
    draft = tasks.draft_task(
        clock,
        Prices(),
        account_id=account_id,
        provider=Provider.MIDJOURNEY,
        action="imagine",
        prompt="a red fox",
        **extra,  # type: ignore[arg-type]
    )
    return await tasks.reserve_task(store, draft, started=started)


async def test_task_round_trips_every_field(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 5)).account
    task = await _reserve(
        store, clock, account.id, params={"picurl": "http://x/a.png", "n": 2}, trigger_id="1234"
    )
    clock.advance(seconds=3)
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.SUBMITTED)
    clock.advance(seconds=3)
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.IN_PROGRESS, progress=31)
    clock.advance(seconds=3)
    done = await tasks.advance_task(
        store,
        clock,
        task.task_id,
        TaskStatus.SUCCESS,
        image_url="http://img/1.png",
        msg_id="1161201395498041344",
        msg_hash="0b7b1ad4-9b4b-4b9b-8a3a-0c2a1e9d2f11",
        result={"prompts": ["one", "two"]},
    )

    stored = await tasks.get_task(store, task.task_id, account_id=account.id)

    assert stored == done
    assert stored.params == {"picurl": "http://x/a.png", "n": 2}
    assert stored.result == {"prompts": ["one", "two"]}
    assert (stored.status, stored.progress, stored.msg_id) == (
        TaskStatus.SUCCESS,
        100,
        "1161201395498041344",
    )
    assert stored.created_at < stored.started_at < stored.finished_at  # type: ignore[operator]
    assert [t.task_id for t in await _by_trigger(store, "1234")] == [task.task_id]


async def _by_trigger(store: Store, trigger_id: str) -> list[Task]:
    async with store.unit_of_work(readonly=True) as uow:
        return list(await uow.tasks.by_trigger(trigger_id))


async def test_status_never_moves_back_or_out_of_a_terminal_state(
    store: Store, clock: FakeClock
) -> None:
    account = (await accounts.create_account(store, clock, "alice", 5)).account
    task = await _reserve(store, clock, account.id)
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.IN_PROGRESS)

    with pytest.raises(InvalidTransition):
        await tasks.advance_task(store, clock, task.task_id, TaskStatus.SUBMITTED)
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.SUCCESS)
    with pytest.raises(InvalidTransition):
        await tasks.advance_task(store, clock, task.task_id, TaskStatus.IN_PROGRESS, progress=50)

    assert (await tasks.get_task(store, task.task_id)).status is TaskStatus.SUCCESS


async def test_tasks_are_listed_per_account_only_newest_first(
    store: Store, clock: FakeClock
) -> None:
    alice = (await accounts.create_account(store, clock, "alice", 10)).account
    bob = (await accounts.create_account(store, clock, "bob", 10)).account
    mine = [await _reserve(store, clock, alice.id) for _ in range(3)]
    theirs = await _reserve(store, clock, bob.id)
    await tasks.fail_task(store, clock, mine[0].task_id, "boom")

    page = await tasks.list_tasks(store, alice.id)
    failed = await tasks.list_tasks(store, alice.id, status=TaskStatus.FAILURE)
    second = await tasks.list_tasks(store, alice.id, limit=2, offset=2)

    assert [t.task_id for t in page.tasks] == [t.task_id for t in reversed(mine)]
    assert page.total == 3
    assert [t.task_id for t in failed.tasks] == [mine[0].task_id] and failed.total == 1
    assert [t.task_id for t in second.tasks] == [mine[0].task_id] and second.total == 3
    with pytest.raises(TaskNotFound):
        await tasks.get_task(store, theirs.task_id, account_id=alice.id)
    assert (await tasks.list_tasks(store, None)).total == 4


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (101, 0), (10, -1)])
async def test_page_bounds_are_enforced(
    store: Store, clock: FakeClock, limit: int, offset: int
) -> None:
    with pytest.raises(InvalidAmount):
        await tasks.list_tasks(store, 1, limit=limit, offset=offset)


async def test_stats_count_what_happened(store: Store, clock: FakeClock) -> None:
    alice = (await accounts.create_account(store, clock, "alice", 10)).account
    await accounts.create_account(store, clock, "bob", 4)
    done = await _reserve(store, clock, alice.id)
    await _reserve(store, clock, alice.id)
    await tasks.advance_task(store, clock, done.task_id, TaskStatus.SUCCESS)

    counts = await reports.stats(store)

    assert (counts.accounts, counts.tasks, counts.successful_tasks, counts.credits) == (
        2,
        2,
        1,
        12,
    )


async def test_settings_keep_the_first_value(store: Store, clock: FakeClock) -> None:
    async with store.unit_of_work() as uow:
        first = await uow.settings.put_if_absent("jwt_secret", "one")
        second = await uow.settings.put_if_absent("jwt_secret", "two")
        await uow.commit()

    async with store.unit_of_work(readonly=True) as uow:
        assert await uow.settings.get("jwt_secret") == "one"
        assert await uow.settings.get("missing") is None
    assert (first, second) == ("one", "one")


async def test_uncommitted_work_is_rolled_back(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 10)).account

    async def crash_before_commit() -> None:
        async with store.unit_of_work() as uow:
            await uow.accounts.debit(account.id, 4, clock())
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        await crash_before_commit()
    async with store.unit_of_work() as uow:
        await uow.accounts.debit(account.id, 3, clock())  # not committed either

    assert (await accounts.get_account_by_id(store, account.id)).credits == 10


async def test_stale_unfinished_tasks_are_failed_and_refunded_once(
    store: Store, clock: FakeClock
) -> None:
    account = (await accounts.create_account(store, clock, "alice", 5)).account
    stale = await _reserve(store, clock, account.id)
    await tasks.advance_task(store, clock, stale.task_id, TaskStatus.SUBMITTED)
    clock.advance(seconds=100)
    fresh = await _reserve(store, clock, account.id)
    await tasks.advance_task(store, clock, fresh.task_id, TaskStatus.SUBMITTED)

    deadlines = tasks.Deadlines(idle_s=50, max_s=1000)
    first = await tasks.fail_stale(store, clock, Provider.MIDJOURNEY, deadlines)
    second = await tasks.fail_stale(store, clock, Provider.MIDJOURNEY, deadlines)

    assert (first, second) == (1, 0)
    failed = await tasks.get_task(store, stale.task_id)
    assert failed.refunded and failed.failure is FailureKind.TIMEOUT
    assert (await tasks.get_task(store, fresh.task_id)).status is TaskStatus.SUBMITTED
    assert (await accounts.get_account_by_id(store, account.id)).credits == 4
    assert (await reports.verify_ledger(store)).ok


async def test_a_job_that_runs_at_once_is_recorded_started_so_a_crash_cannot_strand_it(
    store: Store, clock: FakeClock
) -> None:
    account = (await accounts.create_account(store, clock, "alice", 5)).account
    running = await _reserve(store, clock, account.id, started=True)
    assert running.status is TaskStatus.SUBMITTED and running.started_at == clock()

    clock.advance(seconds=100)  # the process died before it could say anything more
    deadlines = tasks.Deadlines(idle_s=50, max_s=1000)
    assert await tasks.fail_stale(store, clock, Provider.MIDJOURNEY, deadlines) == 1
    assert (await tasks.get_task(store, running.task_id)).refunded

"""Contract: debits, reservations, exactly-once refunds and the ledger invariant."""

from __future__ import annotations

import asyncio

import pytest

from mjcore.errors import InsufficientCredits
from mjcore.ledger import EntryKind
from mjcore.ports import Store
from mjcore.pricing import Prices
from mjcore.services import accounts, reports, tasks
from mjcore.tasks import Provider, Task, TaskStatus

from ..support import FakeClock, tamper_total


async def _reserve(
    store: Store, clock: FakeClock, account_id: int, action: str = "imagine"
) -> Task:
    return await tasks.reserve_task(
        store,
        tasks.draft_task(
            clock,
            Prices({"describe": 2, "upload": 0}),
            account_id=account_id,
            provider=Provider.MIDJOURNEY,
            action=action,
            prompt="a cat",
        ),
    )


async def _balance(store: Store, account_id: int) -> int:
    return (await accounts.get_account_by_id(store, account_id)).credits


async def test_debits_succeed_until_the_balance_is_spent(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 3)).account

    for _ in range(3):
        await _reserve(store, clock, account.id)
    with pytest.raises(InsufficientCredits) as refused:
        await _reserve(store, clock, account.id)

    assert (refused.value.balance, refused.value.cost) == (0, 1)
    assert await _balance(store, account.id) == 0
    page = await tasks.list_tasks(store, account.id)
    assert page.total == 3  # the refused job left no task behind


async def test_price_table_decides_the_cost(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 3)).account

    described = await _reserve(store, clock, account.id, "describe")
    free = await _reserve(store, clock, account.id, "upload")

    assert (described.cost, free.cost) == (2, 0)
    assert await _balance(store, account.id) == 1
    with pytest.raises(InsufficientCredits):
        await _reserve(store, clock, account.id, "describe")


async def test_concurrent_debits_never_overspend(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 10)).account

    results = await asyncio.gather(
        *(_reserve(store, clock, account.id) for _ in range(100)), return_exceptions=True
    )

    accepted = [r for r in results if isinstance(r, Task)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (len(accepted), len(refused)) == (10, 90)
    assert await _balance(store, account.id) == 0
    assert (await tasks.list_tasks(store, account.id)).total == 10
    assert (await reports.verify_ledger(store)).ok


async def test_failed_task_is_refunded_once(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 5)).account
    task = await _reserve(store, clock, account.id)

    first = await tasks.fail_task(store, clock, task.task_id, "discord said 400")
    again = await tasks.fail_task(store, clock, task.task_id, "duplicate error event")
    assert not await tasks.refund_task(store, clock, task.task_id)

    assert first.status is TaskStatus.FAILURE and first.refunded
    assert again.fail_reason == "discord said 400"
    assert await _balance(store, account.id) == 5
    async with store.unit_of_work(readonly=True) as uow:
        kinds = [e.kind for e in await uow.ledger.entries(account.id)]
    assert kinds == [EntryKind.GRANT, EntryKind.DEBIT, EntryKind.REFUND]


async def test_refund_applied_twice_refunds_once(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 5)).account
    task = await _reserve(store, clock, account.id)

    assert await tasks.refund_task(store, clock, task.task_id)
    assert not await tasks.refund_task(store, clock, task.task_id)

    assert await _balance(store, account.id) == 5


async def test_concurrent_failures_and_refunds_refund_once(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 5)).account
    task = await _reserve(store, clock, account.id)

    await asyncio.gather(
        *(tasks.fail_task(store, clock, task.task_id, f"error #{i}") for i in range(10)),
        *(tasks.refund_task(store, clock, task.task_id) for _ in range(10)),
    )

    assert await _balance(store, account.id) == 5
    async with store.unit_of_work(readonly=True) as uow:
        refunds = [e for e in await uow.ledger.entries(account.id) if e.kind is EntryKind.REFUND]
    assert len(refunds) == 1
    assert (await reports.verify_ledger(store)).ok


async def test_successful_task_is_not_refunded_by_a_late_failure(
    store: Store, clock: FakeClock
) -> None:
    account = (await accounts.create_account(store, clock, "alice", 5)).account
    task = await _reserve(store, clock, account.id)
    await tasks.advance_task(store, clock, task.task_id, TaskStatus.SUBMITTED)
    await tasks.advance_task(
        store, clock, task.task_id, TaskStatus.SUCCESS, image_url="http://x/1.png"
    )

    late = await tasks.fail_task(store, clock, task.task_id, "late error event")

    assert late.status is TaskStatus.SUCCESS and not late.refunded
    assert await _balance(store, account.id) == 4


async def test_ledger_verify_passes_after_everything(store: Store, clock: FakeClock) -> None:
    alice = await accounts.create_account(store, clock, "alice", 10)
    bob = await accounts.create_account(store, clock, "bob", 0)
    done = await _reserve(store, clock, alice.account.id)
    failed = await _reserve(store, clock, alice.account.id)
    await tasks.advance_task(store, clock, done.task_id, TaskStatus.SUCCESS)
    await tasks.fail_task(store, clock, failed.task_id, "boom")
    await accounts.update_tokens(store, clock, alice.app_key, 20)
    await accounts.reset_usage(store, clock, alice.app_key)
    await accounts.update_tokens(store, clock, bob.app_key, 3)

    report = await reports.verify_ledger(store)

    assert report.ok and report.accounts_checked == 2


async def test_ledger_verify_fails_on_a_counter_changed_behind_its_back(
    store: Store, clock: FakeClock
) -> None:
    alice = (await accounts.create_account(store, clock, "alice", 10)).account
    await accounts.create_account(store, clock, "bob", 10)

    await tamper_total(store, alice.id, 5)
    report = await reports.verify_ledger(store)

    assert not report.ok
    [mismatch] = report.mismatches
    assert (mismatch.user_name, mismatch.token_total, mismatch.entries_total) == ("alice", 15, 10)

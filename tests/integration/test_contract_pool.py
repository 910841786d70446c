"""Contract: the pool of Discord accounts on every store: jobs spread by free capacity,
follow-ups stay on their grid's account, an account out of service fails its jobs once
and the others carry on, and the counters always agree with the tasks."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from attrs import evolve

from adapters.sql import SqlStore
from mjcore.discord_accounts import (
    AccountGone,
    AccountNameTaken,
    DiscordAccount,
    Health,
    NoAccountAvailable,
    Secret,
)
from mjcore.errors import QueueFull
from mjcore.midjourney import EventType, ListenerEvent, MjAction
from mjcore.ports import Store
from mjcore.pricing import Prices
from mjcore.services import accounts, reports, tasks
from mjcore.services.midjourney import (
    MidjourneyService,
    ParentRef,
    QueueLimits,
    disable_discord_account,
)
from mjcore.tasks import Task, TaskStatus

from ..support import FakeClock
from .test_contract_queue import FakeMirror, FakeProvider, _end, pool_account


async def _pool(
    store: Store, clock: FakeClock, *sizes: tuple[str, int], queue: int = 50
) -> tuple[MidjourneyService, FakeProvider]:
    provider = FakeProvider()
    mj = MidjourneyService(store, clock, Prices(), provider, FakeMirror(), QueueLimits(3, queue))
    for name, concurrency in sizes:
        await mj.add_account(pool_account(name, concurrency))
        clock.advance(seconds=1)
    return mj, provider


async def _user(store: Store, clock: FakeClock, credits: int = 100) -> int:
    return (await accounts.create_account(store, clock, "buyer", credits)).account.id


async def _consistent(store: Store) -> None:
    """The queue's counters, each account's ``running`` and the ledger agree with the tasks."""
    check = await reports.verify_queue(store)
    assert check.ok, check
    assert (await reports.verify_ledger(store)).ok


async def _running(store: Store) -> dict[str, int]:
    async with store.unit_of_work(readonly=True) as uow:
        return {a.name: a.running for a in await uow.discord_accounts.list()}


async def _grid(mj: MidjourneyService, user: int, prompt: str = "fox") -> Task:
    """An imagine that Midjourney finished (a grid with buttons)."""
    job = await mj.imagine(user, prompt)
    await mj.handle(_end(job, f"9{abs(hash(job.task_id)) % 10**12}"))
    return await tasks.get_task(mj.store, job.task_id)


async def test_jobs_go_to_the_account_with_the_most_free_slots(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _pool(store, clock, ("a", 2), ("b", 3), ("c", 1))
    user = await _user(store, clock)

    jobs = [await mj.imagine(user, f"fox {i}") for i in range(9)]

    assert Counter(provider.sent_by) == {"a": 2, "b": 3, "c": 1}
    assert provider.sent_by[0] == "b"  # three free: the most
    assert [j.status for j in jobs[6:]] == [TaskStatus.NOT_START] * 3
    assert {j.worker for j in jobs[6:]} == {None}  # waiting for whichever frees first
    assert await _running(store) == {"a": 2, "b": 3, "c": 1}
    await _consistent(store)


async def test_ties_go_to_the_least_recently_used_account(store: Store, clock: FakeClock) -> None:
    mj, provider = await _pool(store, clock, ("a", 5), ("b", 5), ("c", 5))
    user = await _user(store, clock)

    for i in range(6):
        await mj.imagine(user, f"fox {i}")
        clock.advance(seconds=1)

    assert provider.sent_by == ["a", "b", "c", "a", "b", "c"]


async def test_a_waiting_job_goes_to_whichever_account_frees_first(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _pool(store, clock, ("a", 1), ("b", 1))
    user = await _user(store, clock)
    _, second, waiting = [await mj.imagine(user, f"fox {i}") for i in range(3)]
    assert waiting.status is TaskStatus.NOT_START

    await mj.handle(_end(second, "1002"))  # b frees first

    started = await tasks.get_task(store, waiting.task_id)
    assert (started.status, started.worker) == (TaskStatus.SUBMITTED, second.worker)
    assert provider.sent_by[-1] == second.worker
    await _consistent(store)


async def test_follow_ups_go_to_the_grids_account_and_wait_for_it(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _pool(store, clock, ("a", 1), ("b", 1))
    user = await _user(store, clock)
    grid = await _grid(mj, user)  # ran on a (never used before b)
    other = await mj.imagine(user, "keeps b busy")
    assert (grid.worker, other.worker) == ("a", "b")

    upscales = [
        await mj.press(user, MjAction.UPSCALE, ParentRef(task_id=grid.task_id), index=i)
        for i in (1, 2)
    ]

    assert [u.worker for u in upscales] == ["a", "a"]
    assert [u.status for u in upscales] == [TaskStatus.SUBMITTED, TaskStatus.NOT_START]
    await mj.handle(_end(other, "2001"))  # b is free: the waiting U2 is a's, it stays
    assert (await tasks.get_task(store, upscales[1].task_id)).status is TaskStatus.NOT_START
    await mj.handle(_end(upscales[0], "2002", filename=f"x_{grid.trigger_id}_u1_{'1' * 8}.png"))
    assert (await tasks.get_task(store, upscales[1].task_id)).status is TaskStatus.SUBMITTED
    assert provider.sent_by == ["a", "b", "a", "a"]
    await _consistent(store)


async def test_a_follow_up_whose_account_is_down_is_refused_and_costs_nothing(
    store: Store, clock: FakeClock
) -> None:
    mj, _ = await _pool(store, clock, ("a", 1), ("b", 1))
    user = await _user(store, clock, 10)
    grid = await _grid(mj, user)
    await mj.disable_account(grid.worker or "")

    with pytest.raises(AccountGone, match=r"\(a\) is disabled"):
        await mj.press(user, MjAction.VARIATION, ParentRef(task_id=grid.task_id), index=1)

    assert (await accounts.get_account_by_id(store, user)).credits == 9
    assert (await tasks.list_tasks(store, user)).total == 1
    assert (await mj.imagine(user, "a new grid")).worker == "b"  # new jobs go elsewhere


async def test_taking_an_account_out_moves_waiting_jobs_and_refunds_its_own_once(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _pool(store, clock, ("a", 2), ("b", 2), ("c", 2))
    user = await _user(store, clock, 100)
    grid = await _grid(mj, user, "grid on a")
    jobs = [await mj.imagine(user, f"fox {i}") for i in range(8)]  # 6 slots: 3 wait
    busy_a = [j for j in [grid, *jobs] if j.worker == "a" and j.status is TaskStatus.SUBMITTED]
    pinned = await mj.press(user, MjAction.UPSCALE, ParentRef(task_id=grid.task_id), index=1)
    assert pinned.status is TaskStatus.NOT_START and pinned.worker == "a"
    before = (await accounts.get_account_by_id(store, user)).credits

    failed = await mj.disable_account("a")
    again = await mj.disable_account("a")  # nothing left to fail

    assert (failed, again) == (len(busy_a) + 1, 0)
    ended = [await tasks.get_task(store, j.task_id) for j in (*busy_a, pinned)]
    assert all(t.status is TaskStatus.FAILURE and t.refunded for t in ended)
    assert all("the Discord account a went out of service" in (t.fail_reason or "") for t in ended)
    assert (await accounts.get_account_by_id(store, user)).credits == before + len(ended)
    assert await _running(store) == {"a": 0, "b": 2, "c": 2}
    waiting = [await tasks.get_task(store, j.task_id) for j in jobs]
    still = [t for t in waiting if t.status is TaskStatus.NOT_START]
    assert len(still) == 2 and all(t.worker is None for t in still)  # b and c are full
    on_b = next(j for j in jobs if j.worker == "b")
    await mj.handle(_end(on_b, "9123456789"))  # a slot frees on b: a waiting job takes it
    moved = [await tasks.get_task(store, t.task_id) for t in still]
    assert [t.worker for t in moved if t.status is TaskStatus.SUBMITTED] == ["b"]
    assert provider.sent_by[-1] == "b"
    async with store.unit_of_work(readonly=True) as uow:
        refunds = [e for e in await uow.ledger.entries(user) if e.kind == "refund"]
    assert len(refunds) == len(ended)  # once each
    await _consistent(store)
    assert provider.sent_by.count("a") == 2 + 1  # the grid, then one job: nothing after


async def test_the_operator_function_leaves_starting_to_the_server(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _pool(store, clock, ("a", 1), ("b", 1))
    user = await _user(store, clock)
    on_a, _, waiting = [await mj.imagine(user, f"fox {i}") for i in range(3)]

    assert await disable_discord_account(store, clock, "a") == 1  # as `mjcore accounts disable`

    assert (await tasks.get_task(store, on_a.task_id)).status is TaskStatus.FAILURE
    await _consistent(store)
    await mj.sweep()  # a server's next sweep starts the waiting job on b... once b frees
    assert (await tasks.get_task(store, waiting.task_id)).status is TaskStatus.NOT_START
    assert provider.sent_by == ["a", "b"]


async def test_a_refused_token_takes_the_account_out_and_the_next_job_goes_elsewhere(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _pool(store, clock, ("a", 2), ("b", 2))
    user = await _user(store, clock, 10)
    provider.rejected.add("a")

    refused = await mj.imagine(user, "first")  # picked a (first added), which Discord refuses
    after = await mj.imagine(user, "second")

    assert (refused.status, refused.refunded, refused.worker) == (TaskStatus.FAILURE, True, "a")
    assert after.worker == "b" and after.status is TaskStatus.SUBMITTED
    [a, b] = await mj.accounts()
    assert (a.state, a.health, b.state) == ("rejected", Health.REJECTED, "healthy")
    assert "HTTP 401" in (a.health_reason or "")
    assert (await accounts.get_account_by_id(store, user)).credits == 9
    await _consistent(store)

    provider.healthy.add("a")
    provider.rejected.discard("a")
    assert await mj.check_accounts() == ["a"]  # GET /users/@me works again
    assert (await mj.account("a")).available


async def test_three_refusals_in_a_row_make_an_account_unhealthy(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _pool(store, clock, ("a", 5))
    user = await _user(store, clock, 10)
    provider.refuse = True

    for i in range(3):
        refused = await mj.imagine(user, f"fox {i}")
        assert refused.status is TaskStatus.FAILURE and refused.refunded

    account = await mj.account("a")
    assert (account.health, account.failures) == (Health.UNHEALTHY, 3)
    assert "3 interactions refused in a row" in (account.health_reason or "")
    with pytest.raises(NoAccountAvailable):
        await mj.imagine(user, "nobody to send it")
    assert (await accounts.get_account_by_id(store, user)).credits == 10
    await mj.enable_account("a")
    provider.refuse = False
    assert (await mj.imagine(user, "back")).status is TaskStatus.SUBMITTED
    assert (await mj.account("a")).failures == 0


async def test_midjourney_saying_the_account_needs_action_takes_it_out(
    store: Store, clock: FakeClock
) -> None:
    mj, _ = await _pool(store, clock, ("a", 3), ("b", 1))
    user = await _user(store, clock)
    on_a, also_a, on_b = [await mj.imagine(user, prompt) for prompt in ("fox", "cat", "owl")]
    assert [j.worker for j in (on_a, also_a, on_b)] == ["a", "a", "b"]
    text = "Action needed to continue: please verify you're human."

    await mj.handle(ListenerEvent(EventType.ERROR, "77", text, on_a.trigger_id))

    account = await mj.account("a")
    assert account.health is Health.UNHEALTHY and "Action needed" in (account.health_reason or "")
    assert (await tasks.get_task(store, also_a.task_id)).status is TaskStatus.FAILURE
    assert (await tasks.get_task(store, on_b.task_id)).status is TaskStatus.SUBMITTED
    await _consistent(store)


async def test_no_account_in_service_refuses_before_charging(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _pool(store, clock, ("a", 1))
    user = await _user(store, clock, 10)
    await mj.disable_account("a")

    with pytest.raises(NoAccountAvailable):
        await mj.imagine(user, "fox")
    with pytest.raises(NoAccountAvailable):
        await mj.upload(user, b"png", "image/png", ".png")

    assert provider.submitted == []
    assert (await accounts.get_account_by_id(store, user)).credits == 10


async def test_concurrent_admissions_never_overfill_an_account(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _pool(store, clock, ("a", 2), ("b", 3), ("c", 1), queue=10)
    user = await _user(store, clock)

    results = await asyncio.gather(
        *(mj.imagine(user, f"fox {i}") for i in range(30)), return_exceptions=True
    )

    accepted = [r for r in results if isinstance(r, Task)]
    assert len(accepted) == 16  # 6 slots and 10 waiting places
    assert all(isinstance(r, QueueFull) for r in results if not isinstance(r, Task))
    assert Counter(provider.sent_by) == {"a": 2, "b": 3, "c": 1}
    assert await _running(store) == {"a": 2, "b": 3, "c": 1}
    await _consistent(store)


async def test_the_pool_keeps_its_accounts_and_never_a_token_in_the_clear(
    store: Store, clock: FakeClock
) -> None:
    mj, _ = await _pool(store, clock, ("a", 2))
    with_bot = evolve(pool_account("bot", 4), bot_token=Secret("bot-token-0123456789abcdef"))
    await mj.add_account(with_bot)

    with pytest.raises(AccountNameTaken):
        await mj.add_account(pool_account("a"))
    with pytest.raises(AccountNameTaken):  # one account per channel
        await mj.add_account(evolve(pool_account("z"), channel_id=with_bot.channel_id))
    await mj.ensure_account(evolve(pool_account("a", 7), guild_id="42"))  # updated in place

    a, bot = await mj.accounts()
    assert (a.concurrency, a.guild_id) == (7, "42")
    assert a.user_token.reveal() == "user-token-of-a-0123456789"
    assert bot.bot_token is not None and bot.bot_token.reveal() == "bot-token-0123456789abcdef"
    assert "user-token-of-a" not in repr(a) and "bot-token" not in str(bot)
    if isinstance(store, SqlStore):
        rows = await _raw(store, "SELECT user_token, bot_token FROM discord_account")
        stored = " ".join(str(v) for row in rows for v in row.values())
        assert "user-token-of-a" not in stored and "bot-token" not in stored
    assert await mj.remove_account("bot") == 0
    assert [x.name for x in await mj.accounts()] == ["a"]


async def _raw(store: SqlStore, sql: str) -> list[dict[str, Any]]:
    async with store.db.connection() as conn:
        await conn.begin(readonly=True)
        try:
            return [dict(row) for row in await conn.fetch_all(sql, ())]
        finally:
            await conn.rollback()


def test_a_secret_never_shows_itself() -> None:
    account = DiscordAccount("a", "1", "2", Secret("mfa.the-token"))
    assert "mfa.the-token" not in repr(account) and "mfa.the-token" not in f"{account.user_token}"

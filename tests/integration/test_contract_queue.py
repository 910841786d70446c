"""Contract: the Midjourney queue on every store: limits, promotion, release, timeouts, events."""

from __future__ import annotations

import asyncio

import pytest
from attrs import evolve

from mjcore.discord_accounts import AccountRejected, DiscordAccount, Secret
from mjcore.errors import (
    InsufficientCredits,
    InvalidInput,
    ProviderNotConfigured,
    ProviderRejected,
    QueueFull,
    SubmissionUncertain,
    TaskNotFound,
)
from mjcore.ledger import EntryKind
from mjcore.midjourney import Attachment, EventType, ListenerEvent, MjAction
from mjcore.ports import Store, Upload
from mjcore.pricing import Prices
from mjcore.services import accounts, reports, tasks
from mjcore.services.midjourney import (
    Handled,
    MidjourneyService,
    ParentRef,
    QueueLimits,
    fail_job,
)
from mjcore.tasks import FailureKind, Provider, Task, TaskStatus

from ..support import MIDJOURNEY_WORDS, FakeClock

HASH = "600f88ff-2147-40ad-83e4-50992c96aadb"


class FakeProvider:
    """Discord as the pool sees it: per account, what was sent, and what it refuses."""

    def __init__(self) -> None:
        self.submitted: list[Task] = []
        self.sent_by: list[str] = []  # the account of each submission
        self.refuse = False
        self.rejected: set[str] = set()  # accounts whose token Discord refuses
        self.healthy: set[str] = set()  # accounts a health check finds working

    async def submit(self, task: Task, account: DiscordAccount) -> None:
        await asyncio.sleep(0)  # let other requests interleave
        if account.name in self.rejected:
            raise AccountRejected(f"Discord refused account {account.name}'s token: HTTP 401")
        if self.refuse:
            raise ProviderRejected("Discord refused the request: HTTP 400")
        self.submitted.append(task)
        self.sent_by.append(account.name)

    async def upload(
        self, account: DiscordAccount, filename: str, data: bytes, content_type: str
    ) -> Upload:
        return Upload(f"x/{filename}", f"https://bucket/x/{filename}")

    async def send_message(self, account: DiscordAccount, upload_filename: str) -> str:
        return f"https://cdn/{upload_filename}"

    async def check(self, account: DiscordAccount) -> bool:
        return account.name in self.healthy


def pool_account(
    name: str = "default", concurrency: int = 2, queue_size: int = 10
) -> DiscordAccount:
    """A Discord account for the pool (its channel id derived from its name)."""
    channel = str(1000 + sum(ord(c) * 31**i for i, c in enumerate(name)) % 10**9)
    return DiscordAccount(
        name,
        "1",
        channel,
        Secret(f"user-token-of-{name}-0123456789"),
        concurrency=concurrency,
        queue_size=queue_size,
    )


class FakeMirror:
    def trusted(self, url: str) -> bool:
        return url.startswith("https://")

    async def mirror(self, url: str) -> str | None:
        return f"https://ours/images/{url.rsplit('/', 1)[-1]}"


async def _service(
    store: Store, clock: FakeClock, concurrency: int = 2, queue: int = 2
) -> tuple[MidjourneyService, FakeProvider]:
    """The service with one account in the pool, of ``concurrency`` slots."""
    provider = FakeProvider()
    limits = QueueLimits(concurrency, queue, timeout_s=300)
    mj = MidjourneyService(store, clock, Prices(), provider, FakeMirror(), limits)
    await mj.add_account(pool_account(concurrency=concurrency))
    return mj, provider


async def _user(store: Store, clock: FakeClock, tokens: int = 100) -> int:
    return (await accounts.create_account(store, clock, f"u{tokens}", tokens)).account.id


async def _holding(store: Store) -> int:
    """Slots taken, after checking that the queue's counters agree with the tasks."""
    check = await reports.verify_queue(store)
    assert check.ok, check
    return check.actual.running


def _end(task: Task, message_id: str, content: str = "", filename: str = "") -> ListenerEvent:
    name = filename or f"me_{task.trigger_id}x_{HASH}.png"
    return ListenerEvent(
        EventType.END,
        message_id,
        content or f"**<#{task.trigger_id}#>p** - <@1> (fast)",
        task.trigger_id,
        (Attachment(f"https://cdn/{name}", name),),
    )


async def test_admission_fills_slots_then_the_queue_then_refuses(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _service(store, clock)
    user = await _user(store, clock, 10)

    accepted = [await mj.imagine(user, f"fox {i}") for i in range(4)]
    with pytest.raises(QueueFull):
        await mj.imagine(user, "one too many")

    assert [t.status for t in accepted] == [TaskStatus.SUBMITTED] * 2 + [TaskStatus.NOT_START] * 2
    assert [t.task_id for t in provider.submitted] == [t.task_id for t in accepted[:2]]
    assert (await accounts.get_account_by_id(store, user)).credits == 6
    assert (await tasks.list_tasks(store, user)).total == 4


async def test_concurrent_admissions_respect_both_limits(store: Store, clock: FakeClock) -> None:
    mj, provider = await _service(store, clock, concurrency=3, queue=5)
    user = await _user(store, clock, 100)

    results = await asyncio.gather(
        *(mj.imagine(user, f"fox {i}") for i in range(30)), return_exceptions=True
    )

    accepted = [r for r in results if isinstance(r, Task)]
    assert len(accepted) == 8
    assert all(isinstance(r, QueueFull) for r in results if not isinstance(r, Task))
    assert await _holding(store) == 3 and len(provider.submitted) == 3
    assert (await accounts.get_account_by_id(store, user)).credits == 92
    assert (await reports.verify_ledger(store)).ok


async def test_no_credits_is_refused_before_the_queue(store: Store, clock: FakeClock) -> None:
    mj, _ = await _service(store, clock)
    user = await _user(store, clock, 0)
    with pytest.raises(InsufficientCredits):
        await mj.imagine(user, "fox")
    assert await _holding(store) == 0


async def test_a_refused_submission_refunds_and_starts_the_next(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _service(store, clock, concurrency=1, queue=5)
    user = await _user(store, clock, 10)
    first = await mj.imagine(user, "first")
    waiting = await mj.imagine(user, "second")

    provider.refuse = True
    refused = await mj.imagine(user, "third")  # waits: the slot is taken
    done = await mj.handle(_end(first, "900"))  # frees the slot; "second" is refused
    provider.refuse = False
    done_second = await tasks.get_task(store, waiting.task_id)
    third = await tasks.get_task(store, refused.task_id)

    assert done is Handled.UPDATED
    assert done_second.status is TaskStatus.FAILURE and done_second.refunded
    assert "HTTP 400" in (done_second.fail_reason or "")
    assert third.status is TaskStatus.FAILURE  # promoted in turn, refused in turn
    assert await _holding(store) == 0
    assert (await accounts.get_account_by_id(store, user)).credits == 9
    assert (await reports.verify_ledger(store)).ok


async def test_finishing_frees_the_slot_for_the_oldest_waiting_task(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _service(store, clock, concurrency=1, queue=5)
    user = await _user(store, clock, 10)
    running = await mj.imagine(user, "a")
    queued = [await mj.imagine(user, x) for x in ("b", "c")]

    await mj.handle(_end(running, "901"))

    assert [t.prompt for t in provider.submitted] == ["a", "b"]
    states = [(await tasks.get_task(store, t.task_id)).status for t in queued]
    assert states == [TaskStatus.SUBMITTED, TaskStatus.NOT_START]
    assert await _holding(store) == 1


async def test_finding_9_a_user_cannot_release_a_running_jobs_slot(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _service(store, clock, concurrency=1, queue=5)
    alice, bob = await _user(store, clock, 10), await _user(store, clock, 11)
    running = await mj.imagine(alice, "a")
    waiting = await mj.imagine(alice, "b")
    assert running.trigger_id is not None

    assert await mj.release(running.trigger_id, bob) == 0
    assert await mj.release(running.trigger_id, alice) == 0  # still at Discord: not hers to free
    assert await _holding(store) == 1
    assert [t.prompt for t in provider.submitted] == ["a"]
    assert (await tasks.get_task(store, waiting.task_id)).status is TaskStatus.NOT_START


async def test_the_listener_releases_any_slot_once(store: Store, clock: FakeClock) -> None:
    mj, provider = await _service(store, clock, concurrency=1, queue=5)
    alice = await _user(store, clock, 10)
    running = await mj.imagine(alice, "a")
    await mj.imagine(alice, "b")
    assert running.trigger_id is not None

    assert await mj.release(running.trigger_id) == 1
    assert await mj.release(running.trigger_id) == 0
    assert await mj.release("unknown") == 0

    assert [t.prompt for t in provider.submitted] == ["a", "b"]
    assert await _holding(store) == 1
    assert (await tasks.get_task(store, running.task_id)).status is TaskStatus.SUBMITTED


async def test_the_sweep_fails_timed_out_jobs_once_and_starts_the_next(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _service(store, clock, concurrency=1, queue=5)
    user = await _user(store, clock, 10)
    stuck = await mj.imagine(user, "stuck")
    waiting = await mj.imagine(user, "next")

    clock.advance(seconds=299)
    assert await mj.sweep() == 0
    clock.advance(seconds=2)
    swept = await asyncio.gather(mj.sweep(), mj.sweep(), mj.sweep())

    failed = await tasks.get_task(store, stuck.task_id)
    assert sum(swept) >= 1
    assert failed.status is TaskStatus.FAILURE and "timed out" in (failed.fail_reason or "")
    assert (await tasks.get_task(store, waiting.task_id)).status is TaskStatus.SUBMITTED
    assert [t.prompt for t in provider.submitted] == ["stuck", "next"]
    async with store.unit_of_work(readonly=True) as uow:
        kinds = [e.kind for e in await uow.ledger.entries(user)]
    assert kinds.count(EntryKind.REFUND) == 1
    assert (await accounts.get_account_by_id(store, user)).credits == 9


async def test_a_result_racing_the_timeout_ends_the_task_once(
    store: Store, clock: FakeClock
) -> None:
    mj, _ = await _service(store, clock)
    user = await _user(store, clock, 10)
    task = await mj.imagine(user, "fox")
    clock.advance(seconds=301)

    await asyncio.gather(mj.sweep(), *(mj.handle(_end(task, "902")) for _ in range(5)))

    ended = await tasks.get_task(store, task.task_id)
    assert ended.status in (TaskStatus.SUCCESS, TaskStatus.FAILURE)
    assert ended.refunded is (ended.status is TaskStatus.FAILURE)
    assert (await accounts.get_account_by_id(store, user)).credits == (10 if ended.refunded else 9)
    assert await _holding(store) == 0
    assert (await reports.verify_ledger(store)).ok


async def test_events_drive_a_task_to_success_and_duplicates_change_nothing(
    store: Store, clock: FakeClock
) -> None:
    mj, _ = await _service(store, clock)
    user = await _user(store, clock, 10)
    task = await mj.imagine(user, "fox")
    trigger = task.trigger_id
    start = ListenerEvent(EventType.START, "500", f"**<#{trigger}#>p** (Waiting to start)", trigger)
    progress = ListenerEvent(EventType.GENERATING, "500", f"**<#{trigger}#>p** (31%)", trigger)
    older = ListenerEvent(EventType.GENERATING, "500", f"**<#{trigger}#>p** (15%)", trigger)

    assert await mj.handle(start) is Handled.UPDATED
    assert await mj.handle(progress) is Handled.UPDATED
    assert await mj.handle(older) is Handled.UPDATED  # an out-of-order edit
    assert (await tasks.get_task(store, task.task_id)).progress == 31
    results = await asyncio.gather(*(mj.handle(_end(task, "501")) for _ in range(4)))

    done = await tasks.get_task(store, task.task_id)
    assert sorted(results) == sorted([Handled.UPDATED] + [Handled.UNCHANGED] * 3)
    assert (done.status, done.progress, done.msg_id, done.msg_hash) == (
        TaskStatus.SUCCESS,
        100,
        "501",
        HASH,
    )
    assert done.image_url == f"https://ours/images/me_{trigger}x_{HASH}.png"
    assert not done.holds_slot
    unknown = ListenerEvent(EventType.END, "1", "<#1#>", "1")
    assert await mj.handle(unknown) is Handled.IGNORED


async def test_follow_ups_share_the_trigger_and_are_told_apart(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _service(store, clock, concurrency=5)
    user = await _user(store, clock, 10)
    grid = await mj.imagine(user, "fox")
    await mj.handle(_end(grid, "600"))
    u1 = await mj.press(user, MjAction.UPSCALE, ParentRef(task_id=grid.task_id), index=1)
    u2 = await mj.press(
        user,
        MjAction.UPSCALE,
        ParentRef(msg_id="600", msg_hash=HASH, trigger_id=grid.trigger_id),
        index=2,
    )
    other = "11111111-2222-3333-4444-555555555555"

    content = f"**<#{grid.trigger_id}#>p** - Image #2 <@1>"
    await mj.handle(_end(u2, "602", content, f"me_x_{other}.png"))
    await mj.handle(_end(u1, "601", content.replace("#2", "#1")))

    assert u1.trigger_id == u2.trigger_id == grid.trigger_id
    assert provider.submitted[-1].params == {"index": 2, "msg_id": "600", "msg_hash": HASH}
    first, second = [await tasks.get_task(store, t.task_id) for t in (u1, u2)]
    assert (first.msg_id, first.msg_hash) == ("601", HASH)
    assert (second.msg_id, second.msg_hash) == ("602", other)


async def test_the_queue_check_catches_counters_changed_behind_its_back(
    store: Store, clock: FakeClock
) -> None:
    mj, _ = await _service(store, clock)
    user = await _user(store, clock, 10)
    await mj.imagine(user, "fox")
    async with store.unit_of_work() as uow:
        await uow.queue.change(Provider.MIDJOURNEY, running=1)
        await uow.commit()

    check = await reports.verify_queue(store)

    assert not check.ok and (check.counters.running, check.actual.running) == (2, 1)


async def test_progress_keeps_a_slow_job_alive_and_silence_fails_it_once(
    store: Store, clock: FakeClock
) -> None:
    mj, _ = await _service(store, clock, concurrency=2)
    user = await _user(store, clock, 10)
    slow = await mj.imagine(user, "a relax-mode job")
    silent = await mj.imagine(user, "a lost job")
    trigger = slow.trigger_id

    for minute in range(1, 9):  # Midjourney says something every 60 s for 8 minutes
        clock.advance(seconds=60)
        text = f"**<#{trigger}#>a relax-mode job** - <@1> ({minute * 10}%) (relaxed)"
        await mj.handle(ListenerEvent(EventType.GENERATING, "700", text, trigger))
        await mj.sweep()
        assert (await tasks.get_task(store, slow.task_id)).status is TaskStatus.IN_PROGRESS

    lost = await tasks.get_task(store, silent.task_id)
    assert lost.status is TaskStatus.FAILURE and lost.failure is FailureKind.TIMEOUT
    assert lost.refunded
    await mj.sweep()
    async with store.unit_of_work(readonly=True) as uow:
        refunds = [e for e in await uow.ledger.entries(user) if e.kind is EntryKind.REFUND]
    assert len(refunds) == 1
    assert (await accounts.get_account_by_id(store, user)).credits == 9


async def test_a_job_is_given_up_after_its_maximum_duration_even_with_progress(
    store: Store, clock: FakeClock
) -> None:
    provider = FakeProvider()
    limits = QueueLimits(2, 2, timeout_s=300, max_duration_s=600)
    mj = MidjourneyService(store, clock, Prices(), provider, FakeMirror(), limits)
    await mj.add_account(pool_account())
    user = await _user(store, clock, 10)
    job = await mj.imagine(user, "endless")
    for _ in range(11):
        clock.advance(seconds=59)
        text = f"**<#{job.trigger_id}#>endless** - <@1> (5%) (relaxed)"
        await mj.handle(ListenerEvent(EventType.GENERATING, "800", text, job.trigger_id))
        await mj.sweep()

    ended = await tasks.get_task(store, job.task_id)
    assert ended.status is TaskStatus.FAILURE and ended.refunded
    assert "600 s after it started" in (ended.fail_reason or "")


@pytest.mark.parametrize(
    "prompt",
    MIDJOURNEY_WORDS,
)
async def test_prompts_with_midjourneys_own_words_finish(
    store: Store, clock: FakeClock, prompt: str
) -> None:
    mj, _ = await _service(store, clock)
    user = await _user(store, clock, 10)
    grid = await mj.imagine(user, prompt)
    trigger = grid.trigger_id
    head = f"**<#{trigger}#>{prompt}**"

    await mj.handle(
        ListenerEvent(EventType.START, "901", f"{head} - <@1> (Waiting to start)", None)
    )
    await mj.handle(ListenerEvent(EventType.GENERATING, "901", f"{head} - <@1> (31%) (fast)", None))
    assert (await tasks.get_task(store, grid.task_id)).progress == 31
    name = f"me_{trigger}_{HASH}.png"
    done = ListenerEvent(
        EventType.END,
        "902",
        f"{head} - <@1> (fast)",
        None,
        (Attachment(f"https://c/{name}", name),),
    )
    assert await mj.handle(done) is Handled.UPDATED
    finished = await tasks.get_task(store, grid.task_id)
    assert (finished.status, finished.msg_id, finished.msg_hash) == (
        TaskStatus.SUCCESS,
        "902",
        HASH,
    )

    u1 = await mj.press(user, MjAction.UPSCALE, ParentRef(task_id=grid.task_id), index=1)
    upscaled = ListenerEvent(
        EventType.END,
        "903",
        f"{head} - Image #1 <@1>",
        None,
        (Attachment(f"https://c/{name}", name),),
    )
    assert await mj.handle(upscaled) is Handled.UPDATED
    assert (await tasks.get_task(store, u1.task_id)).status is TaskStatus.SUCCESS


async def test_a_users_own_trigger_marker_is_refused(store: Store, clock: FakeClock) -> None:
    mj, provider = await _service(store, clock)
    user = await _user(store, clock, 10)
    with pytest.raises(InvalidInput):
        await mj.imagine(user, "a fox <#1234567890123456#>")
    assert provider.submitted == []
    assert (await accounts.get_account_by_id(store, user)).credits == 10


async def test_a_follow_up_may_name_its_grid_by_task_id_as_trigger_id(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _service(store, clock, concurrency=5)
    user = await _user(store, clock, 10)
    grid = await mj.imagine(user, "fox")
    await mj.handle(_end(grid, "600"))

    niehao = ParentRef(msg_id="600", msg_hash=HASH, trigger_id=grid.task_id)
    u3 = await mj.press(user, MjAction.UPSCALE, niehao, index=3)

    assert u3.parent_task_id == grid.task_id and u3.trigger_id == grid.trigger_id
    assert provider.submitted[-1].params["index"] == 3
    stranger = await _user(store, clock, 11)
    with pytest.raises(TaskNotFound):
        await mj.press(stranger, MjAction.UPSCALE, niehao, index=1)


async def test_the_queue_status_counts_the_callers_share(store: Store, clock: FakeClock) -> None:
    mj, _ = await _service(store, clock, concurrency=1, queue=5)
    alice, bob = await _user(store, clock, 10), await _user(store, clock, 11)
    await mj.imagine(alice, "a")
    await mj.imagine(bob, "b")
    await mj.imagine(bob, "c")

    status = await mj.queue_status(bob)
    mine = await mj.queue_status(alice)

    assert (status.running, status.waiting) == ((), 2)
    assert [t.prompt for t in mine.running] == ["a"] and mine.waiting == 0
    assert (status.limits.concurrency, status.limits.queue_size) == (1, 5)


async def test_a_submission_that_may_have_reached_discord_is_kept_not_refunded(
    store: Store, clock: FakeClock
) -> None:
    mj, provider = await _service(store, clock)
    user = await _user(store, clock, 10)

    async def uncertain(task: Task, account: DiscordAccount) -> None:
        raise SubmissionUncertain("no answer; not sent again")

    provider.submit = uncertain  # type: ignore[method-assign]
    kept = await mj.imagine(user, "fox")

    assert kept.status is TaskStatus.SUBMITTED and not kept.refunded
    assert (await accounts.get_account_by_id(store, user)).credits == 9
    assert await _holding(store) == 1  # Discord may be drawing it: the slot stays taken
    await mj.handle(_end(kept, "990"))  # and if it was, the result arrives as usual
    assert (await tasks.get_task(store, kept.task_id)).status is TaskStatus.SUCCESS


@pytest.mark.parametrize("prompt", ["a fox --repeat 40", "a fox --r 4", "a fox --turbo"])
async def test_finding_8_parameters_that_multiply_the_cost_are_refused_and_nothing_is_charged(
    store: Store, clock: FakeClock, prompt: str
) -> None:
    mj, provider = await _service(store, clock)
    user = await _user(store, clock, 10)
    with pytest.raises(InvalidInput, match="multiplies the cost"):
        await mj.imagine(user, prompt)
    assert provider.submitted == []
    assert (await accounts.get_account_by_id(store, user)).credits == 10

    allowed = evolve(mj, allowed_parameters=frozenset({"repeat", "turbo"}))
    assert (await allowed.imagine(user, prompt)).status is TaskStatus.SUBMITTED


async def test_finding_13_uploads_are_their_uploaders_alone(store: Store, clock: FakeClock) -> None:
    mj, _ = await _service(store, clock)
    alice, bob = await _user(store, clock, 10), await _user(store, clock, 11)
    upload = await mj.upload(alice, b"png", "image/png", ".png")
    name = upload.upload.upload_filename

    with pytest.raises(TaskNotFound):
        await mj.describe(bob, name, upload.trigger_id)
    with pytest.raises(TaskNotFound):
        await mj.send_message(bob, name)
    described = await mj.describe(alice, name, upload.trigger_id)

    assert described.status is TaskStatus.SUBMITTED
    assert await mj.send_message(alice, name) == f"https://cdn/{name}"
    assert (await accounts.get_account_by_id(store, bob)).credits == 11


async def test_the_operator_failing_a_running_job_refunds_once_and_frees_its_slot(
    store: Store, clock: FakeClock
) -> None:
    mj, _ = await _service(store, clock, concurrency=1, queue=2)
    account_id = await _user(store, clock, 10)
    running = await mj.imagine(account_id, "a fox")
    waiting = await mj.imagine(account_id, "a cat")

    failed = await fail_job(store, clock, running.task_id, "stuck at Discord")
    again = await fail_job(store, clock, running.task_id, "stuck at Discord")

    assert failed.status is TaskStatus.FAILURE and failed.refunded and not failed.holds_slot
    assert again == failed  # nothing more: no second refund
    assert await _holding(store) == 0  # the counters agree with the tasks
    await mj.sweep()  # what a server does every few seconds: the waiting job starts
    assert (await tasks.get_task(store, waiting.task_id)).status is TaskStatus.SUBMITTED
    assert await _holding(store) == 1
    assert (await accounts.get_account_by_id(store, account_id)).credits == 9
    assert (await reports.verify_ledger(store)).ok


async def test_the_operator_failing_a_waiting_job_gives_its_place_back(
    store: Store, clock: FakeClock
) -> None:
    mj, _ = await _service(store, clock, concurrency=1, queue=1)
    account_id = await _user(store, clock, 10)
    await mj.imagine(account_id, "a fox")
    waiting = await mj.imagine(account_id, "a cat")

    failed = await fail_job(store, clock, waiting.task_id, "cancelled")
    third = await mj.imagine(account_id, "a dog")  # the one waiting place is free again

    assert failed.status is TaskStatus.FAILURE and failed.refunded
    assert third.status is TaskStatus.NOT_START
    assert await _holding(store) == 1
    assert (await accounts.get_account_by_id(store, account_id)).credits == 8


async def test_the_operator_cannot_fail_a_finished_or_unknown_job(
    store: Store, clock: FakeClock
) -> None:
    account_id = await _user(store, clock, 10)
    done = await tasks.reserve_task(
        store,
        tasks.draft_task(
            clock, Prices(), account_id=account_id, provider=Provider.FIREWORKS, action="g"
        ),
    )
    await tasks.advance_task(store, clock, done.task_id, TaskStatus.SUCCESS)

    unchanged = await fail_job(store, clock, done.task_id, "too late")

    assert unchanged.status is TaskStatus.SUCCESS and not unchanged.refunded
    with pytest.raises(TaskNotFound):
        await fail_job(store, clock, "no-such-task", "x")
    assert (await accounts.get_account_by_id(store, account_id)).credits == 9


async def test_an_unavailable_provider_refuses_before_charging_or_recording(
    store: Store, clock: FakeClock
) -> None:
    provider = FakeProvider()
    mj = MidjourneyService(store, clock, Prices(), provider, FakeMirror(), QueueLimits())
    account_id = await _user(store, clock, 10)  # and no Discord account in the pool

    with pytest.raises(ProviderNotConfigured):
        await mj.imagine(account_id, "a fox")
    with pytest.raises(ProviderNotConfigured):
        await mj.upload(account_id, b"png", "image/png", ".png")

    assert provider.submitted == []
    assert (await tasks.list_tasks(store, account_id)).total == 0
    async with store.unit_of_work(readonly=True) as uow:
        assert [e.kind for e in await uow.ledger.entries(account_id)] == [EntryKind.GRANT]

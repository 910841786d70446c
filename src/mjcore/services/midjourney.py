"""Midjourney jobs: admission under a global queue, dispatch, listener events, timeouts.

A task holding a slot runs at Discord; a ``NOT_START`` task waits. The queue's
counters live in one row that every admission and slot change locks first (before
any task or account row), so admissions and releases from several processes see
one consistent queue, and an admission costs two statements however long the queue.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from attrs import define, evolve, field, frozen

from .. import events
from ..clock import Clock
from ..discord_accounts import (
    ACCOUNT_CONCURRENCY,
    ACCOUNT_NAME,
    ACCOUNT_QUEUE_SIZE,
    DEFAULT_ACCOUNT,
    DISCORD_TOKEN,
    FAILURES_BEFORE_UNHEALTHY,
    SNOWFLAKE,
    AccountGone,
    AccountNameTaken,
    AccountRejected,
    DiscordAccount,
    Health,
    NoAccountAvailable,
    account_trouble,
    pick,
)
from ..errors import (
    InvalidInput,
    InvalidTransition,
    NotFound,
    ProviderError,
    ProviderNotConfigured,
    QueueFull,
    SubmissionUncertain,
    TaskNotFound,
)
from ..midjourney import (
    EventType,
    ListenerEvent,
    MjAction,
    check_user_text,
    costly_parameters,
    describe_prompts,
    hash_of,
    new_trigger_id,
    progress_of,
    route,
)
from ..moderation import check_prompt
from ..ports import ImageMirror, MidjourneyProvider, Store, UnitOfWork, Upload, UploadRecord
from ..pricing import Prices
from ..tasks import FailureKind, Provider, Task, TaskStatus
from . import tasks as lifecycle
from .idempotency import Guard
from .jobs import NO_OPTIONS, Extras, JobOptions
from .tasks import Deadlines, Failure, TaskPage

MJ = Provider.MIDJOURNEY
T = TypeVar("T")
log = logging.getLogger("mjcore.midjourney")
_UPLOAD_NAME = re.compile(r"[\w-]+/(\w+)\.(?:png|jpe?g|webp|gif)")


@frozen
class QueueLimits:
    concurrency: int = 3
    queue_size: int = 10
    timeout_s: int = 300  # after the job's last event
    max_duration_s: int = 3600  # after its start

    @property
    def deadlines(self) -> Deadlines:
        return Deadlines(self.timeout_s, self.max_duration_s)


@frozen
class QueueStatus:
    """The queue's limits and the caller's own jobs in it (never anyone else's)."""

    limits: QueueLimits
    running: tuple[Task, ...]  # the caller's jobs at Discord
    waiting: int  # the caller's jobs waiting for a slot


@frozen
class ParentRef:
    """How a follow-up names its grid: by our task id, or yokonsan's message triple (whose
    ``trigger_id`` may also be the grid's task id, as niehao clients send it)."""

    task_id: str | None = None
    msg_id: str | None = None
    msg_hash: str | None = None
    trigger_id: str | None = None


@frozen
class Picture:
    """An image a caller hands in with a job (to be uploaded to Discord first)."""

    data: bytes
    content_type: str
    suffix: str  # ".png"


@frozen
class UploadResult:
    upload: Upload
    trigger_id: str


class Handled(enum.StrEnum):
    """What a listener event did."""

    UPDATED = "success"
    UNCHANGED = "unchanged"  # a duplicate, or an event about a task that already ended
    IGNORED = "ignored"  # no task of ours has this trigger id


@frozen
class Ending:
    """What :meth:`MidjourneyService._finish` did."""

    task: Task
    promoted: list[Task]
    changed: bool


@define
class MidjourneyService:
    store: Store
    clock: Clock
    prices: Prices
    provider: MidjourneyProvider
    mirror: ImageMirror
    limits: QueueLimits
    banned_words: tuple[str, ...] = ()
    allowed_parameters: frozenset[str] = frozenset()  # of COSTLY_PARAMETERS
    extras: Extras = field(factory=Extras)  # callbacks and Idempotency-Keys

    # -- accepting jobs -------------------------------------------------------------

    async def imagine(
        self,
        account_id: int,
        prompt: str,
        picurl: str | None = None,
        options: JobOptions = NO_OPTIONS,
        pictures: Sequence[Picture] = (),
    ) -> Task:
        """A grid from ``prompt``, after the image at ``picurl`` and the ``pictures`` handed
        in (each uploaded and posted first, once the prompt has passed its checks)."""
        check_user_text(prompt, "prompt")
        for name in sorted(costly_parameters(prompt) - self.allowed_parameters):
            raise InvalidInput(f"--{name} multiplies the cost of a job and is not allowed here")
        check_prompt(prompt, self.banned_words)
        urls = [picurl] if picurl else []
        for picture in pictures:  # image prompts come first, before our marker: one picurl
            posted = await self.upload(
                account_id, picture.data, picture.content_type, picture.suffix
            )
            urls.append(await self.send_message(account_id, posted.upload.upload_filename))
        picurl = " ".join(urls) or None
        params = await self.extras.params({"picurl": picurl} if picurl else {}, options)
        draft = self._draft(account_id, MjAction.IMAGINE, prompt, params)
        return await self._start(draft, options)

    async def press(
        self,
        account_id: int,
        action: MjAction,
        parent: ParentRef,
        *,
        index: int = 1,
        direction: str | None = None,
        zoomout: int | None = None,
        options: JobOptions = NO_OPTIONS,
    ) -> Task:
        """A follow-up on a finished grid or image: upscale, variation, zoom, pan, reroll."""
        grid = await self._parent(account_id, parent)
        params: dict[str, Any] = {"index": index, "msg_id": grid.msg_id, "msg_hash": grid.msg_hash}
        if direction is not None:
            params["direction"] = direction
        if zoomout is not None:
            params["zoomout"] = zoomout
        params = await self.extras.params(params, options)
        draft = self._draft(account_id, action, grid.prompt, params, grid.task_id, grid.trigger_id)
        # its buttons are on the grid's message, in the channel of the account that made it
        return await self._start(evolve(draft, worker=grid.worker or DEFAULT_ACCOUNT), options)

    async def describe(
        self,
        account_id: int,
        upload_filename: str,
        trigger_id: str,
        options: JobOptions = NO_OPTIONS,
    ) -> Task:
        """Describe an image the caller uploaded with :meth:`upload`."""
        found = _UPLOAD_NAME.fullmatch(upload_filename)
        if found is None or found.group(1) != trigger_id:
            raise InvalidInput("upload_filename and trigger_id must both come from one /upload")
        upload = await self._own_upload(account_id, upload_filename)
        params = await self.extras.params({"upload_filename": upload_filename}, options)
        draft = self._draft(account_id, MjAction.DESCRIBE, "", params, None, trigger_id)
        return await self._start(evolve(draft, worker=upload.worker or DEFAULT_ACCOUNT), options)

    async def describe_picture(
        self, account_id: int, picture: Picture, options: JobOptions = NO_OPTIONS
    ) -> Task:
        """Describe an image handed in with the job (uploaded first)."""
        uploaded = await self.upload(account_id, picture.data, picture.content_type, picture.suffix)
        name = uploaded.upload.upload_filename
        return await self.describe(account_id, name, uploaded.trigger_id, options)

    async def upload(
        self, account_id: int, data: bytes, content_type: str, suffix: str
    ) -> UploadResult:
        """Hand an image to Discord under a fresh trigger id (free; no task), as the
        caller's: only they may describe it or post it."""
        account = await self._any_account()
        trigger_id = new_trigger_id()
        name = f"{trigger_id}{suffix}"
        upload = await self._at_discord(
            account, self.provider.upload(account, name, data, content_type)
        )
        record = UploadRecord(
            trigger_id, account_id, upload.upload_filename, self.clock(), account.name
        )
        async with self.store.unit_of_work() as uow:
            await uow.uploads.add(record)
            await uow.commit()
        return UploadResult(upload, trigger_id)

    async def send_message(self, account_id: int, upload_filename: str) -> str:
        """Post one of the caller's uploads as a message; its public URL."""
        upload = await self._own_upload(account_id, upload_filename)
        account = await self._home(upload.worker or DEFAULT_ACCOUNT)
        return await self._at_discord(account, self.provider.send_message(account, upload_filename))

    async def _any_account(self) -> DiscordAccount:
        """An account for work outside the queue (an upload): available, least used."""
        accounts = await self.accounts()
        if not accounts:
            raise ProviderNotConfigured("Midjourney is not available on this server")
        ready = [evolve(a, running=0) for a in accounts if a.available]
        chosen = pick(ready)
        if chosen is None:
            raise NoAccountAvailable("no Discord account is available to run Midjourney jobs")
        return next(a for a in accounts if a.name == chosen.name)

    async def _home(self, name: str) -> DiscordAccount:
        """The account something of the caller's lives on, if it is in service."""
        async with self.store.unit_of_work(readonly=True) as uow:
            account = await uow.discord_accounts.get(name)
        if account is None or not account.available:
            raise AccountGone(f"the Discord account of this upload ({name}) is out of service")
        return account

    async def _own_upload(self, account_id: int, upload_filename: str) -> UploadRecord:
        found = _UPLOAD_NAME.fullmatch(upload_filename)
        if found is None:
            raise InvalidInput("upload_filename must be one returned by /upload")
        async with self.store.unit_of_work(readonly=True) as uow:
            upload = await uow.uploads.get(found.group(1))
        if upload is None or (upload.account_id, upload.upload_filename) != (
            account_id,
            upload_filename,
        ):
            raise TaskNotFound("no upload of yours by that name")
        return upload

    async def _parent(self, account_id: int, ref: ParentRef) -> Task:
        async with self.store.unit_of_work(readonly=True) as uow:
            if ref.task_id is not None:
                grid = await uow.tasks.get(ref.task_id)
            else:
                named = await uow.tasks.by_msg_id(ref.msg_id or "")
                grid = next(
                    (
                        t
                        for t in named
                        if t.account_id == account_id
                        and t.msg_hash == ref.msg_hash
                        and ref.trigger_id in (t.trigger_id, t.task_id)
                    ),
                    None,
                )
        if grid is None or grid.account_id != account_id or grid.provider is not MJ:
            raise TaskNotFound("parent task not found")
        if grid.status is not TaskStatus.SUCCESS or not grid.msg_id or not grid.msg_hash:
            raise InvalidInput(f"task {grid.task_id} has no finished image to act on yet")
        return grid

    def _draft(
        self,
        account_id: int,
        action: MjAction,
        prompt: str,
        params: dict[str, Any],
        parent_task_id: str | None = None,
        trigger_id: str | None = None,
    ) -> Task:
        """A job not yet accepted (a fresh trigger id is chosen on admission if none)."""
        return lifecycle.draft_task(
            self.clock,
            self.prices,
            account_id=account_id,
            provider=MJ,
            action=action,
            prompt=prompt,
            params=params,
            parent_task_id=parent_task_id,
            trigger_id=trigger_id,
        )

    async def _start(self, draft: Task, options: JobOptions = NO_OPTIONS) -> Task:
        task, account = await self._admit(draft, self.extras.guard(options, draft.task_id))
        if account is None:
            return task  # waiting; dispatched when a slot frees
        return (await self._run([task], [account]))[task.task_id]

    async def _admit(
        self, draft: Task, guard: Guard | None = None
    ) -> tuple[Task, DiscordAccount | None]:
        """Charge and record the job; it runs at once on the pool's account with the most
        free slots (a follow-up: on its grid's account) if one is free, else it waits. The
        task, and the account it runs on (None: it waits)."""
        now = draft.created_at
        async with self.store.unit_of_work() as uow:
            queue = await uow.queue.lock(MJ)
            accounts = await uow.discord_accounts.list()
            target = await self._target(uow, accounts, draft.worker)  # refusals charge nothing
            if guard is not None:  # an Idempotency-Key: before anything is charged
                await guard(uow)
            task = evolve(draft, trigger_id=draft.trigger_id or await _fresh_trigger(uow))
            if target is not None:
                task = evolve(task.advance(TaskStatus.SUBMITTED, now), holds_slot=True)
                task = evolve(task, worker=target.name)
                await uow.queue.change(MJ, running=1)
                await uow.discord_accounts.change_running(target.name, 1, now)
            elif queue.waiting >= self.limits.queue_size:
                raise QueueFull("Task queue is full.")
            else:
                await uow.queue.change(MJ, waiting=1)
            await lifecycle.open_in(uow, task)
            await uow.commit()
        return task, target

    @staticmethod
    async def _target(
        uow: UnitOfWork, accounts: Sequence[DiscordAccount], pinned: str | None
    ) -> DiscordAccount | None:
        """Where a new job runs now (None: it waits), or why it cannot be accepted."""
        if not accounts:
            raise ProviderNotConfigured("Midjourney is not available on this server")
        if pinned is not None:
            home = next((a for a in accounts if a.name == pinned), None)
            if home is None or not home.available:
                raise AccountGone(_gone(pinned, home))
            if home.free > 0:
                return home
            if await uow.tasks.count_waiting_for(MJ, pinned) >= home.queue_size:
                raise QueueFull("Task queue is full.")
            return None
        if not any(a.available for a in accounts):
            raise NoAccountAvailable("no Discord account is available to run Midjourney jobs")
        return pick(accounts)

    # -- running and ending jobs ------------------------------------------------------

    async def _run(
        self, tasks: list[Task], known: Sequence[DiscordAccount] | None = None
    ) -> dict[str, Task]:
        """Send each task to Discord through its account (``known``: the accounts as the
        caller just read them, else they are read); a refusal ends it (refund, slot freed,
        next one sent). An account whose token Discord refuses, or that is refused again
        and again, is taken out of service: its jobs fail, others take the queue."""
        outcome: dict[str, Task] = {}
        pending = list(tasks)
        if known is None and pending:
            known = await self.accounts()
        accounts = {a.name: a for a in known or ()}
        while pending:
            task = pending.pop(0)
            account = accounts.get(task.worker or "")
            try:
                if account is None:
                    raise ProviderNotConfigured(f"the Discord account {task.worker} is gone")
                await self.provider.submit(task, account)
            except SubmissionUncertain as exc:  # maybe at Discord: its events or the timeout end it
                log.warning("task.uncertain", extra={"task_id": task.task_id, "detail": str(exc)})
                outcome[task.task_id] = task
            except AccountRejected as exc:
                assert account is not None
                pending.extend(await self._take_down(account.name, str(exc), Health.REJECTED))
                outcome[task.task_id] = await lifecycle.get_task(self.store, task.task_id)
                accounts = {a.name: a for a in await self.accounts()}
            except (ProviderError, ProviderNotConfigured) as exc:
                ending = await self._finish(task.task_id, Failure(str(exc), FailureKind.REFUSED))
                outcome[task.task_id] = ending.task
                pending.extend(ending.promoted)
                if account is not None and isinstance(exc, ProviderError):
                    pending.extend(await self._note_failure(account, str(exc)))
            else:
                outcome[task.task_id] = task
                if account is not None and account.failures:
                    await self._clear_failures(account.name)
                    accounts[account.name] = evolve(account, failures=0)
        return outcome

    async def _note_failure(self, account: DiscordAccount, error: str) -> list[Task]:
        """Count a refused interaction; the last of a run takes the account out of service."""
        async with self.store.unit_of_work() as uow:
            failures = await uow.discord_accounts.record_failure(account.name, error)
            await uow.commit()
        if failures < FAILURES_BEFORE_UNHEALTHY:
            return []
        reason = f"{failures} interactions refused in a row ({error})"
        return await self._take_down(account.name, reason, Health.UNHEALTHY)

    async def _clear_failures(self, name: str) -> None:
        async with self.store.unit_of_work() as uow:
            await uow.discord_accounts.clear_failures(name)
            await uow.commit()

    async def _at_discord(self, account: DiscordAccount, call: Awaitable[T]) -> T:
        """A call through ``account`` outside any job (an upload, a message): a refused token
        takes the account out of service, as a refused job does."""
        try:
            return await call
        except AccountRejected as exc:
            await self._run(await self._take_down(account.name, str(exc), Health.REJECTED))
            raise

    async def _finish(self, task_id: str, failure: Failure | None = None, **changes: Any) -> Ending:
        """End a task (refund on failure, exactly once), free its slot, promote waiting ones."""
        now = self.clock()
        async with self.store.unit_of_work() as uow:
            queue = await uow.queue.lock(MJ)
            current = await lifecycle.locked(uow, task_id)
            if current.status.terminal:
                return Ending(current, [], changed=False)
            task = await lifecycle.end_in(uow, current, now, failure, **changes)
            task = await _leave_queue(uow, current, task)
            promoted = await self._fill(uow, now, queue.waiting)
            await uow.commit()
        return Ending(task, promoted, changed=True)

    async def _fill(self, uow: UnitOfWork, now: datetime, waiting: int) -> list[Task]:
        """Start waiting tasks on accounts with free slots, the most free first (the caller
        holds the queue lock, and says how many waited when it took it: none, no query).
        A follow-up waits for its own account; others take any."""
        if waiting <= 0:
            return []
        accounts = {a.name: a for a in await uow.discord_accounts.list()}
        exhausted: set[str] = set()  # free, but nothing waiting may run there
        promoted: list[Task] = []
        while len(promoted) < waiting and (
            target := pick(a for a in accounts.values() if a.name not in exhausted)
        ):
            job = await uow.tasks.next_waiting(MJ, target.name)
            if job is None:
                exhausted.add(target.name)
                continue
            started = await lifecycle.move_in(
                uow, job, TaskStatus.SUBMITTED, now, worker=target.name
            )
            await uow.tasks.set_holds_slot(started.task_id, True)
            await uow.discord_accounts.change_running(target.name, 1, now)
            accounts[target.name] = evolve(target, running=target.running + 1, last_used_at=now)
            promoted.append(evolve(started, holds_slot=True))
        if promoted:
            await uow.queue.change(MJ, running=len(promoted), waiting=-len(promoted))
        return promoted

    async def release(self, trigger_id: str, account_id: int | None = None) -> int:
        """Free slots held by tasks of this trigger; idempotent.

        With ``account_id`` (a user's key) only that account's tasks that have ended: a
        user cannot free the slot of a job Discord is still drawing, or the concurrency
        limit would mean nothing. Without it (the listener with the callback secret, the
        admin) any task's slot.
        """
        async with self.store.unit_of_work() as uow:
            queue = await uow.queue.lock(MJ)
            freed = 0
            for task in await uow.tasks.by_trigger(trigger_id):
                mine = account_id is None or (
                    task.account_id == account_id and task.status.terminal
                )
                if mine and task.holds_slot and await uow.tasks.set_holds_slot(task.task_id, False):
                    freed += 1
                    await uow.queue.change(MJ, running=-1)
                    if task.worker is not None:
                        await uow.discord_accounts.change_running(task.worker, -1)
            promoted = await self._fill(uow, self.clock(), queue.waiting)
            await uow.commit()
        await self._run(promoted)
        return freed

    async def sweep(self) -> int:
        """Fail (and refund) jobs past a deadline (idle, or running too long); start
        waiting ones."""
        overdue = await lifecycle.overdue_tasks(self.store, self.clock, MJ, self.limits.deadlines)
        promoted: list[Task] = []
        for task, failure in overdue:
            promoted += (await self._finish(task.task_id, failure)).promoted
        async with self.store.unit_of_work() as uow:
            queue = await uow.queue.lock(MJ)
            promoted += await self._fill(uow, self.clock(), queue.waiting)
            await uow.commit()
        await self._run(promoted)
        return len(overdue)

    # -- the pool of Discord accounts -------------------------------------------------------
    # The operator's changes are the module functions below (the CLI uses them as they are:
    # a running server's sweep starts what they free); here each is followed by starting
    # whatever may run now.

    async def accounts(self) -> Sequence[DiscordAccount]:
        async with self.store.unit_of_work(readonly=True) as uow:
            return await uow.discord_accounts.list()

    async def account(self, name: str) -> DiscordAccount:
        return await discord_account(self.store, name)

    async def add_account(self, account: DiscordAccount) -> DiscordAccount:
        """Put an account in the pool; it takes waiting jobs at once."""
        await add_discord_account(self.store, self.clock, account)
        await self._refill()
        return await self.account(account.name)

    async def ensure_account(self, account: DiscordAccount) -> None:
        """The account the settings describe (``MJCORE_DISCORD_*``): added, or its ids,
        token and limits brought in line; the operator's switch and its health stay.
        Called at start-up, so it starts nothing itself (a backlog would hold the server's
        start): the sweep starts what may run now."""
        try:
            await add_discord_account(self.store, self.clock, account)
        except AccountNameTaken:
            await update_discord_account(self.store, account)

    async def enable_account(self, name: str) -> DiscordAccount:
        await enable_discord_account(self.store, name)
        await self._refill()
        return await self.account(name)

    async def disable_account(self, name: str, reason: str = "disabled by the operator") -> int:
        failed = await disable_discord_account(self.store, self.clock, name, reason)
        await self._refill()
        return failed

    async def remove_account(self, name: str) -> int:
        failed = await remove_discord_account(self.store, self.clock, name)
        await self._refill()
        return failed

    async def check_accounts(self) -> list[str]:
        """Ask Discord about every account that is out of service but switched on; the ones
        whose token works again are healthy again. Their names."""
        down = [a for a in await self.accounts() if a.enabled and a.health is not Health.HEALTHY]
        back = [a.name for a in down if await self.provider.check(a)]
        if back:
            async with self.store.unit_of_work() as uow:
                await uow.queue.lock(MJ)
                for name in back:
                    await uow.discord_accounts.set_health(name, Health.HEALTHY, None, None)
                    await uow.discord_accounts.clear_failures(name)
                await uow.commit()
            await self._refill()
        return back

    async def _refill(self) -> None:
        """Start what may run now (after the pool changed)."""
        async with self.store.unit_of_work() as uow:
            queue = await uow.queue.lock(MJ)
            promoted = await self._fill(uow, self.clock(), queue.waiting)
            await uow.commit()
        await self._run(promoted)

    async def _take_down(self, name: str, reason: str, health: Health) -> list[Task]:
        """Mark an account out of service (its jobs fail, refunded once) and start, in the
        same transaction, what may now run elsewhere."""
        now = self.clock()
        async with self.store.unit_of_work() as uow:
            queue = await uow.queue.lock(MJ)
            await out_of_service_in(uow, name, reason, now, health=health)
            promoted = await self._fill(uow, now, queue.waiting)
            await uow.commit()
        return promoted

    async def _keep_copy(self, task: Task, url: str) -> None:
        """Show our copy of the image instead of Discord's expiring URL, if we can make one."""
        stored = await self.mirror.mirror(url)
        if stored is not None:
            await lifecycle.annotate_task(self.store, task.task_id, image_url=stored)

    # -- looking -----------------------------------------------------------------------

    async def task(self, account_id: int, task_id: str) -> Task:
        """One of the account's tasks (any provider's), else :class:`TaskNotFound`."""
        return await lifecycle.get_task(self.store, task_id, account_id=account_id)

    async def tasks(
        self, account_id: int, status: TaskStatus | None, limit: int, offset: int
    ) -> TaskPage:
        return await lifecycle.list_tasks(
            self.store, account_id, status=status, limit=limit, offset=offset
        )

    async def unfinished(self, account_id: int) -> list[Task]:
        """The account's Midjourney jobs running or waiting, oldest first."""
        bound = self.limits.concurrency + self.limits.queue_size
        async with self.store.unit_of_work(readonly=True) as uow:
            return list(await uow.tasks.unfinished_of(MJ, account_id, bound))

    async def queue_status(self, account_id: int) -> QueueStatus:
        """The queue's limits and the caller's jobs in it."""
        bound = self.limits.concurrency + self.limits.queue_size
        async with self.store.unit_of_work(readonly=True) as uow:
            mine = await uow.tasks.unfinished_of(MJ, account_id, bound)
        running = tuple(t for t in mine if t.status is not TaskStatus.NOT_START)
        return QueueStatus(self.limits, running, len(mine) - len(running))

    # -- the listener's events -------------------------------------------------------

    async def handle(self, event: ListenerEvent) -> Handled:
        """Apply one listener delivery. Duplicates and late events change nothing."""
        async with self.store.unit_of_work(readonly=True) as uow:
            trigger = event.trigger
            if trigger is None and event.reference_id:  # a reply to a result we know
                replied = await uow.tasks.by_msg_id(event.reference_id)
                trigger = next((t.trigger_id for t in replied if t.provider is MJ), None)
            tasks = list(await uow.tasks.by_trigger(trigger)) if trigger else []
        if not tasks:
            return Handled.IGNORED
        describing = event.type is EventType.TEXT
        running = (TaskStatus.SUBMITTED, TaskStatus.IN_PROGRESS)  # only those Discord has
        open_tasks = [
            t
            for t in tasks
            if t.status in running and (t.action == MjAction.DESCRIBE) == describing
        ]
        if event.type is EventType.DELETED:  # only the job whose very message it was
            owner = [t for t in tasks if t.result.get("progress_msg_id") == event.message_id]
            task = next((t for t in owner if t in open_tasks), None)
        else:
            task = route(open_tasks, event)
        if task is None:
            return Handled.UNCHANGED
        try:
            return await self._apply(task, event)
        except InvalidTransition:
            return Handled.UNCHANGED  # it ended while we looked

    async def _apply(self, task: Task, event: ListenerEvent) -> Handled:
        progress_ref = {"progress_msg_id": task.result.get("progress_msg_id", event.message_id)}
        if event.type is EventType.QUEUED:  # still alive, not started: the timer restarts
            await lifecycle.advance_task(
                self.store,
                self.clock,
                task.task_id,
                task.status,
                result=dict(task.result) | {"queued_at_midjourney": True},
            )
            return Handled.UPDATED
        if event.type in (EventType.START, EventType.GENERATING):
            progress = max(task.progress, progress_of(event.content) or 0)
            await lifecycle.advance_task(
                self.store,
                self.clock,
                task.task_id,
                TaskStatus.IN_PROGRESS,
                progress=min(progress, 99),
                result=dict(task.result) | progress_ref,
            )
            return Handled.UPDATED
        if event.type is EventType.END:
            if not event.attachments:
                return Handled.UNCHANGED  # a notice without an image is not the result
            first = event.attachments[0]
            if not self.mirror.trusted(first.url):  # file:, javascript:, a stranger's host
                log.warning("task.untrusted_result", extra={"task_id": task.task_id})
                return Handled.UNCHANGED
            ending = await self._finish(
                task.task_id,
                image_url=first.url,
                msg_id=event.message_id,
                msg_hash=hash_of(first.filename),
                result=dict(task.result) | {"discord_image_url": first.url},
            )
            if ending.changed:  # ours to copy only once this event has won the task
                await self._keep_copy(ending.task, first.url)
        elif event.type is EventType.TEXT:
            image = next((e.image_url for e in event.embeds if e.image_url), None)
            image = image if image is not None and self.mirror.trusted(image) else None
            prompts = describe_prompts([e.description for e in event.embeds])
            ending = await self._finish(
                task.task_id,
                msg_id=event.message_id,
                image_url=image,
                result=dict(task.result) | {"prompts": prompts},
            )
        else:
            ending = await self._finish(task.task_id, _failure(event))
            trouble = account_trouble(event.reason) if event.type is EventType.ERROR else None
            if trouble is not None and task.worker is not None:  # the account, not just the job
                reason = f"Midjourney says: {event.reason}"
                ending.promoted.extend(await self._take_down(task.worker, reason, Health.UNHEALTHY))
        await self._run(ending.promoted)
        return Handled.UPDATED if ending.changed else Handled.UNCHANGED


def _failure(event: ListenerEvent) -> Failure:
    """Why an event ended a job (Midjourney's words stay in the reason)."""
    match event.type:
        case EventType.BANNED:
            return Failure("Midjourney refused the prompt (banned)", FailureKind.BANNED)
        case EventType.DELETED:
            return Failure(
                "Midjourney removed the job before it finished (moderation)", FailureKind.BANNED
            )
        case EventType.FILTERED:
            return Failure("Midjourney filtered the result", FailureKind.FILTERED)
    return Failure(f"Midjourney stopped the job: {event.reason}")


async def _leave_queue(uow: UnitOfWork, current: Task, ended: Task) -> Task:
    """Give back the slot or the waiting place ``current`` held, now that it has ended
    (the caller holds the queue lock)."""
    if current.holds_slot and await uow.tasks.set_holds_slot(current.task_id, False):
        ended = evolve(ended, holds_slot=False)
        await uow.queue.change(MJ, running=-1)
        if current.worker is not None:
            await uow.discord_accounts.change_running(current.worker, -1)
    if current.status is TaskStatus.NOT_START:
        await uow.queue.change(MJ, waiting=-1)
    return ended


async def fail_job(
    store: Store, clock: Clock, task_id: str, reason: str, kind: FailureKind = FailureKind.ERROR
) -> Task:
    """End any provider's task without result, as the operator: refunded exactly once
    through the lifecycle, and a Midjourney job gives its slot or waiting place back in
    the same transaction (a server's sweep starts what waits). A task that already ended
    is returned unchanged."""
    async with store.unit_of_work() as uow:
        seen = await uow.tasks.get(task_id)
        if seen is None:
            raise TaskNotFound(f"no task {task_id}")
        if seen.provider is MJ:
            await uow.queue.lock(MJ)  # the queue row before the task row, as everywhere
        current = await lifecycle.locked(uow, task_id)
        if current.status.terminal:
            return current
        task = await lifecycle.end_in(uow, current, clock(), Failure(reason, kind))
        if current.provider is MJ:
            task = await _leave_queue(uow, current, task)
        await uow.commit()
    return task


async def _fresh_trigger(uow: UnitOfWork) -> str:
    while True:
        trigger_id = new_trigger_id()
        if not await uow.tasks.by_trigger(trigger_id):
            return trigger_id


_ALL = 100_000  # every unfinished job of one account (it runs a few, a few wait for it)


def _gone(name: str, account: DiscordAccount | None) -> str:
    state = "removed" if account is None else account.state
    return f"the Discord account that made this job's grid ({name}) is {state}"


def _check_account(account: DiscordAccount) -> None:
    ACCOUNT_NAME.check(account.name)
    SNOWFLAKE.check(account.guild_id)
    SNOWFLAKE.check(account.channel_id)
    DISCORD_TOKEN.check(account.user_token.reveal())
    if account.bot_token is not None:
        DISCORD_TOKEN.check(account.bot_token.reveal())
    ACCOUNT_CONCURRENCY.check(account.concurrency)
    ACCOUNT_QUEUE_SIZE.check(account.queue_size)


# -- the operator's changes to the pool (each in one transaction, under the queue's lock) --


async def discord_account(store: Store, name: str) -> DiscordAccount:
    async with store.unit_of_work(readonly=True) as uow:
        found = await uow.discord_accounts.get(name)
    if found is None:
        raise NotFound(f"no Discord account named {name}")
    return found


async def add_discord_account(store: Store, clock: Clock, account: DiscordAccount) -> None:
    """Put an account in the pool (:class:`AccountNameTaken` if its name or channel is)."""
    _check_account(account)
    async with store.unit_of_work() as uow:
        await uow.queue.lock(MJ)
        await uow.discord_accounts.add(evolve(account, created_at=clock()))
        await uow.commit()


async def update_discord_account(store: Store, account: DiscordAccount) -> None:
    """New ids, tokens or limits for an account (its switch, health and counters stay)."""
    _check_account(account)
    async with store.unit_of_work() as uow:
        await uow.queue.lock(MJ)
        found = await uow.discord_accounts.update(account)
        await uow.commit()
    if not found:
        raise NotFound(f"no Discord account named {account.name}")


async def enable_discord_account(store: Store, name: str) -> None:
    """The operator's switch on, and healthy again (they vouch for it)."""
    async with store.unit_of_work() as uow:
        await uow.queue.lock(MJ)
        found = await uow.discord_accounts.set_enabled(name, True)
        await uow.discord_accounts.set_health(name, Health.HEALTHY, None, None)
        await uow.discord_accounts.clear_failures(name)
        await uow.commit()
    if not found:
        raise NotFound(f"no Discord account named {name}")


async def disable_discord_account(
    store: Store, clock: Clock, name: str, reason: str = "disabled by the operator"
) -> int:
    """Take an account out of service: its running jobs and the follow-ups waiting for it
    fail (refunded once); others' waiting jobs go to other accounts. How many failed."""
    async with store.unit_of_work() as uow:
        await uow.queue.lock(MJ)
        if await uow.discord_accounts.get(name) is None:
            raise NotFound(f"no Discord account named {name}")
        failed = await out_of_service_in(uow, name, reason, clock(), enabled=False)
        await uow.commit()
    return failed


async def remove_discord_account(store: Store, clock: Clock, name: str) -> int:
    """Disable and forget an account (its jobs' history keeps its name). How many failed."""
    async with store.unit_of_work() as uow:
        await uow.queue.lock(MJ)
        if await uow.discord_accounts.get(name) is None:
            raise NotFound(f"no Discord account named {name}")
        failed = await out_of_service_in(
            uow, name, "removed by the operator", clock(), enabled=False
        )
        await uow.discord_accounts.remove(name)
        await uow.commit()
    return failed


async def out_of_service_in(
    uow: UnitOfWork,
    name: str,
    reason: str,
    now: datetime,
    *,
    health: Health | None = None,
    enabled: bool | None = None,
) -> int:
    """Mark an account out of service (switched off, or its health) and fail its running
    jobs and the follow-ups waiting for it, refunded once, their slots given back (the
    caller holds the queue lock). How many failed."""
    if enabled is not None:
        await uow.discord_accounts.set_enabled(name, enabled)
    if health is not None:
        await uow.discord_accounts.set_health(name, health, reason, reason)
    failure = Failure(f"the Discord account {name} went out of service: {reason}")
    failed = 0
    for task in await uow.tasks.unfinished_on(MJ, name, _ALL):
        current = await lifecycle.locked(uow, task.task_id)
        if not current.status.terminal:
            await _leave_queue(uow, current, await lifecycle.end_in(uow, current, now, failure))
            failed += 1
    events.account_down(name, reason, health.value if health else "disabled")
    return failed

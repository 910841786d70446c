"""Reports (totals, records, the ledger invariant) and the operator's service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from attrs import define, field, frozen

from ..accounts import Account
from ..clock import Clock
from ..codes import CODE_EXPIRY_DAYS, RedemptionCode
from ..discord_accounts import DiscordAccount
from ..errors import AccountNotFound, NotFound
from ..ledger import LedgerEntry, LedgerReport, report
from ..ports import Counts, QueueCounts, Store, TaskQuery
from ..tasks import Provider, Task, TaskStatus
from ..webhooks import Delivery, DeliveryStatus
from . import codes
from .accounts import Profile
from .tasks import PAGE_LIMIT


async def stats(store: Store) -> Counts:
    async with store.unit_of_work(readonly=True) as uow:
        return await uow.stats.counts()


@frozen
class Observed:
    """What the metrics report of the database: the totals and the queues' counters."""

    counts: Counts
    queues: Mapping[Provider, QueueCounts]
    pool: Sequence[DiscordAccount] = ()


QUEUED = (Provider.MIDJOURNEY,)  # the providers that have a queue


async def observed(store: Store) -> Observed:
    """Totals and queue counters as committed now, without taking any lock."""
    async with store.unit_of_work(readonly=True) as uow:
        counts = await uow.stats.counts()
        queues = {provider: await uow.queue.peek(provider) for provider in QUEUED}
        pool = await uow.discord_accounts.list()
    return Observed(counts, queues, pool)


@frozen
class QueueCheck:
    """A provider queue's counters beside what the tasks say."""

    provider: Provider
    counters: QueueCounts
    actual: QueueCounts
    workers: Mapping[str, tuple[int, int]] = field(factory=dict)
    """Per Discord account that disagrees: its ``running`` counter, and the slots its tasks
    hold."""

    @property
    def ok(self) -> bool:
        return self.counters == self.actual and not self.workers


async def verify_queue(store: Store, provider: Provider = Provider.MIDJOURNEY) -> QueueCheck:
    async with store.unit_of_work() as uow:  # the lock: no slot moves while we count
        counters = await uow.queue.lock(provider)
        actual = QueueCounts(
            await uow.tasks.count_holding(provider), await uow.tasks.count_waiting(provider)
        )
        holding = await uow.tasks.count_holding_by_worker(provider)
        accounts = await uow.discord_accounts.list() if provider is Provider.MIDJOURNEY else []
    counted = {a.name: a.running for a in accounts}
    workers = {
        name: (counted.get(name, 0), holding.get(name, 0))
        for name in counted.keys() | holding.keys()
        if counted.get(name, 0) != holding.get(name, 0)
    }
    return QueueCheck(provider, counters, actual, workers)


@frozen
class AccountLedger:
    account: Account
    entries: tuple[LedgerEntry, ...]  # oldest first


async def account_ledger(store: Store, user_name: str) -> AccountLedger:
    """An account (deleted ones too: their ledger stays) and every entry of its balance."""
    async with store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.by_name(user_name)
        if account is None:
            raise AccountNotFound(f"no account named {user_name!r}")
        entries = await uow.ledger.entries(account.id)
    return AccountLedger(account, tuple(entries))


async def verify_ledger(store: Store) -> LedgerReport:
    """Check that every account's counters equal the sums of its ledger entries."""
    async with store.unit_of_work(readonly=True) as uow:
        return report(await uow.ledger.tallies())


@frozen
class Record:
    """A finished job as the image API lists it."""

    task: Task
    user_name: str


async def records(store: Store, account_id: int | None, limit: int) -> list[Record]:
    """Successful tasks, newest first: one account's, or everyone's with ``None``."""
    PAGE_LIMIT.check(limit)
    query = TaskQuery(account_id, TaskStatus.SUCCESS, limit)
    async with store.unit_of_work(readonly=True) as uow:
        found = await uow.tasks.query(query)
        names: dict[int, str] = {}
        for task in found:
            if task.account_id not in names:
                account = await uow.accounts.get(task.account_id)
                names[task.account_id] = account.user_name if account else ""
    return [Record(task, names[task.account_id]) for task in found]


async def generated_count(store: Store, account_id: int) -> int:
    """How many jobs of the account succeeded (the image API's ``totalGenerated``)."""
    async with store.unit_of_work(readonly=True) as uow:
        return await uow.tasks.count(TaskQuery(account_id, TaskStatus.SUCCESS))


async def user_summaries(store: Store, limit: int, offset: int = 0) -> list[Profile]:
    """Live accounts with their generated counts."""
    async with store.unit_of_work(readonly=True) as uow:
        found = await uow.accounts.list(limit, offset)
        counts = await uow.tasks.count_by_account(TaskStatus.SUCCESS)
    return [Profile(a, counts.get(a.id, 0)) for a in found if a.deleted_at is None]


@define
class AdminService:
    """What the operator does: issue codes, look at users, records and totals."""

    store: Store
    clock: Clock

    async def issue_codes(
        self, credits_each: int, count: int, expires_in_days: int | None = None
    ) -> list[RedemptionCode]:
        expires = None
        if expires_in_days is not None:
            CODE_EXPIRY_DAYS.check(expires_in_days)
            expires = self.clock() + timedelta(days=expires_in_days)
        return await codes.issue_codes(
            self.store, self.clock, credits_each, count, expires_at=expires
        )

    async def users(self, limit: int, offset: int) -> list[Profile]:
        return await user_summaries(self.store, limit, offset)

    async def records(self, limit: int) -> list[Record]:
        return await records(self.store, None, limit)

    async def stats(self) -> Counts:
        return await stats(self.store)

    async def deliveries(
        self, *, task_id: str | None = None, failed: bool = False, limit: int = 100
    ) -> Sequence[Delivery]:
        """Webhook deliveries, newest first: a task's, or the ones that gave up."""
        statuses = (DeliveryStatus.DEAD, DeliveryStatus.GONE) if failed else None
        async with self.store.unit_of_work(readonly=True) as uow:
            return await uow.webhooks.list(task_id=task_id, statuses=statuses, limit=limit)

    async def retry_delivery(self, delivery_id: int) -> Delivery:
        """Send a delivery that is not pending again, now, with the same webhook-id."""
        async with self.store.unit_of_work() as uow:
            await uow.webhooks.retry(delivery_id, self.clock())
            found = await uow.webhooks.get(delivery_id)
            await uow.commit()
        if found is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        return found

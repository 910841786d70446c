"""The operator's console (the admin web pages): find and change accounts, list codes and
tasks, end a task, check the ledger, and count what happened per day.

Every change goes through the use case the command line uses, so a rule lives once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta

from attrs import define, frozen

from ..accounts import Account
from ..clock import Clock
from ..codes import RedemptionCode
from ..ledger import EntryKind, LedgerReport
from ..limits import Whole
from ..ports import Store, TaskQuery
from ..tasks import Task, TaskStatus
from . import accounts, codes, reports
from .accounts import Profile
from .midjourney import fail_job
from .tasks import TaskPage, list_tasks

CHART_DAYS = Whole("days", 1, 90)
SCAN_ACCOUNTS = 10_000  # the daily counts read at most this many accounts' ledgers
SCAN_TASKS = 100  # tasks read per page while counting generations


@frozen
class Day:
    """What happened on one (UTC) day."""

    day: date
    generations: int = 0  # jobs that succeeded, by the day they were created
    spent: int = 0  # credits debited, less refunds
    granted: int = 0  # credits granted (codes, operators, new accounts)


@frozen
class Checked:
    """``ledger verify``: every account's counters against its entries, and the queue's."""

    ledger: LedgerReport
    queue: reports.QueueCheck

    @property
    def ok(self) -> bool:
        return self.ledger.ok and self.queue.ok


@define
class AdminConsole:
    """What the operator does in the admin pages, over the same use cases as the CLI."""

    store: Store
    clock: Clock

    async def find_users(self, search: str, limit: int = 100) -> list[Profile]:
        """Live accounts whose name contains ``search`` (any case), with their counts."""
        needle = search.strip().lower()
        found = await reports.user_summaries(self.store, SCAN_ACCOUNTS)
        return [p for p in found if needle in p.account.user_name.lower()][:limit]

    async def grant(self, user_name: str, credits: int) -> Account:
        return await accounts.grant_credits(self.store, self.clock, user_name, credits)

    async def set_disabled(self, user_name: str, disabled: bool) -> Account:
        return await accounts.set_disabled(self.store, self.clock, user_name, disabled)

    async def codes(self, limit: int, *, unused_only: bool = False) -> list[RedemptionCode]:
        return await codes.list_codes(self.store, self.clock, limit, unused_only=unused_only)

    async def names(self, ids: Sequence[int]) -> dict[int, str]:
        """User names by account id (for lists of tasks and codes)."""
        names: dict[int, str] = {}
        async with self.store.unit_of_work(readonly=True) as uow:
            for account_id in set(ids):
                account = await uow.accounts.get(account_id)
                names[account_id] = account.user_name if account is not None else ""
        return names

    async def tasks(
        self,
        *,
        user_name: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> TaskPage:
        """Tasks newest first: everyone's, or one account's."""
        account_id = None
        if user_name:
            account_id = (await accounts.get_account(self.store, user_name)).id
        return await list_tasks(self.store, account_id, status=status, limit=limit, offset=offset)

    async def fail(self, task_id: str, reason: str) -> Task:
        """End a task without result, refunded once (``mjcore tasks fail``)."""
        return await fail_job(self.store, self.clock, task_id, reason)

    async def verify(self) -> Checked:
        return Checked(
            await reports.verify_ledger(self.store), await reports.verify_queue(self.store)
        )

    async def days(self, count: int = 14) -> list[Day]:
        """The last ``count`` days (today last): generations, credits spent and granted.

        Read from the tasks and the ledger through the ports, so it costs a scan of recent
        tasks and of every account's entries: fine for a console, not for a hot path.
        """
        CHART_DAYS.check(count)
        today = self.clock().date()
        first = today - timedelta(days=count - 1)
        made: Counter[date] = Counter()
        spent: Counter[date] = Counter()
        granted: Counter[date] = Counter()
        async with self.store.unit_of_work(readonly=True) as uow:
            offset = 0
            while True:
                page = await uow.tasks.query(TaskQuery(None, None, SCAN_TASKS, offset))
                for task in page:
                    if task.status is TaskStatus.SUCCESS and task.created_at.date() >= first:
                        made[task.created_at.date()] += 1
                if len(page) < SCAN_TASKS or page[-1].created_at.date() < first:
                    break
                offset += SCAN_TASKS
            for account in await uow.accounts.list(SCAN_ACCOUNTS):
                for entry in await uow.ledger.entries(account.id):
                    when = entry.created_at.date()
                    if when < first:
                        continue
                    if entry.kind in (EntryKind.DEBIT, EntryKind.REFUND):
                        spent[when] -= entry.delta
                    elif entry.kind is EntryKind.GRANT:
                        granted[when] += entry.delta
        return [
            Day(d, made[d], spent[d], granted[d])
            for d in (first + timedelta(days=i) for i in range(count))
        ]

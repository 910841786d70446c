"""In-memory store: a public test double that passes the same contract suite as the SQL stores.

A write unit of work holds one lock and works on a copy of the state, so it is
serializable and rolls back by dropping the copy. Nothing survives the process.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from attrs import define, evolve, field

from mjcore.accounts import Account
from mjcore.codes import RedemptionCode
from mjcore.discord_accounts import AccountNameTaken, DiscordAccount, Health
from mjcore.errors import Conflict, UserNameTaken
from mjcore.idempotency import KeyRecord, KeyState
from mjcore.ledger import LedgerEntry, Tally, tally
from mjcore.ports import AccountChanges, Counts, NewAccount, QueueCounts, TaskQuery, UploadRecord
from mjcore.tasks import MUTABLE_FIELDS, Provider, Task, TaskStatus
from mjcore.webhooks import Delivery, DeliveryStatus, Outcome

_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@define
class _State:
    accounts: dict[int, Account] = field(factory=dict)
    ledger: list[LedgerEntry] = field(factory=list)
    codes: dict[str, RedemptionCode] = field(factory=dict)
    tasks: dict[str, Task] = field(factory=dict)
    settings: dict[str, str] = field(factory=dict)
    next_account_id: int = 1
    queues: dict[Provider, QueueCounts] = field(factory=dict)
    leases: dict[str, tuple[str, datetime]] = field(factory=dict)
    uploads: dict[str, UploadRecord] = field(factory=dict)
    deliveries: dict[int, Delivery] = field(factory=dict)
    keys: dict[tuple[int, str], KeyRecord] = field(factory=dict)
    discord_accounts: dict[str, DiscordAccount] = field(factory=dict)

    def copy(self) -> _State:
        return _State(
            dict(self.accounts),
            list(self.ledger),
            dict(self.codes),
            dict(self.tasks),
            dict(self.settings),
            self.next_account_id,
            dict(self.queues),
            dict(self.leases),
            dict(self.uploads),
            dict(self.deliveries),
            dict(self.keys),
            dict(self.discord_accounts),
        )


@define
class _Accounts:
    s: _State

    async def add(self, new: NewAccount) -> Account:
        if any(a.user_name == new.user_name for a in self.s.accounts.values()):
            raise UserNameTaken(f"user name {new.user_name!r} is taken")
        account = Account(
            id=self.s.next_account_id,
            user_name=new.user_name,
            app_key_digest=new.app_key_digest,
            token_total=new.token_total,
            token_use=0,
            created_at=new.created_at,
            updated_at=new.created_at,
            password_hash=new.password_hash,
        )
        self.s.next_account_id += 1
        self.s.accounts[account.id] = account
        return account

    async def get(self, account_id: int, *, for_update: bool = False) -> Account | None:
        return self.s.accounts.get(account_id)

    async def by_name(self, user_name: str, *, for_update: bool = False) -> Account | None:
        return next((a for a in self.s.accounts.values() if a.user_name == user_name), None)

    async def by_key_digest(self, digest: str) -> Account | None:
        return next((a for a in self.s.accounts.values() if a.app_key_digest == digest), None)

    async def by_key_digest_with_task(
        self, digest: str, task_id: str
    ) -> tuple[Account | None, Task | None]:
        account = await self.by_key_digest(digest)
        task = self.s.tasks.get(task_id)
        if account is None or task is None or task.account_id != account.id:
            return account, None
        return account, task

    async def list(self, limit: int, offset: int = 0) -> Sequence[Account]:
        return sorted(self.s.accounts.values(), key=lambda a: a.id)[offset : offset + limit]

    async def debit(self, account_id: int, cost: int, now: datetime) -> bool:
        account = self.s.accounts.get(account_id)
        if account is None or not account.active or account.credits < cost:
            return False
        self.s.accounts[account_id] = evolve(
            account, token_use=account.token_use + cost, updated_at=now
        )
        return True

    async def change_use(self, account_id: int, delta: int, now: datetime) -> None:
        account = self.s.accounts[account_id]
        self.s.accounts[account_id] = evolve(
            account, token_use=account.token_use + delta, updated_at=now
        )

    async def change_total(self, account_id: int, delta: int, now: datetime) -> None:
        account = self.s.accounts[account_id]
        self.s.accounts[account_id] = evolve(
            account, token_total=account.token_total + delta, updated_at=now
        )

    async def update_flags(self, account_id: int, now: datetime, changes: AccountChanges) -> None:
        account = self.s.accounts[account_id]
        self.s.accounts[account_id] = evolve(account, updated_at=now, **changes.given())


@define
class _Ledger:
    s: _State

    async def append(self, entry: LedgerEntry) -> None:
        self.s.ledger.append(evolve(entry, id=len(self.s.ledger) + 1))

    async def entries(self, account_id: int) -> Sequence[LedgerEntry]:
        return [e for e in self.s.ledger if e.account_id == account_id]

    async def tallies(self) -> Sequence[Tally]:
        by_account: dict[int, list[LedgerEntry]] = {a: [] for a in self.s.accounts}
        for entry in self.s.ledger:
            by_account.setdefault(entry.account_id, []).append(entry)
        return [
            tally(a.id, a.user_name, a.token_total, a.token_use, by_account[a.id])
            for a in sorted(self.s.accounts.values(), key=lambda a: a.id)
        ]


@define
class _Codes:
    s: _State

    async def add_many(self, codes: Sequence[RedemptionCode]) -> None:
        if any(c.code in self.s.codes for c in codes) or len({c.code for c in codes}) < len(codes):
            raise Conflict("duplicate redemption code")
        self.s.codes.update((c.code, c) for c in codes)

    async def get(self, code: str) -> RedemptionCode | None:
        return self.s.codes.get(code)

    async def redeem(self, code: str, account_id: int, now: datetime) -> bool:
        found = self.s.codes.get(code)
        if found is None or found.redeemed_by is not None or found.expired(now):
            return False
        self.s.codes[code] = evolve(found, redeemed_by=account_id, redeemed_at=now)
        return True

    async def expire(self, code: str, now: datetime) -> bool:
        found = self.s.codes.get(code)
        if found is None or found.redeemed_by is not None or found.expired(now):
            return False
        self.s.codes[code] = evolve(found, expires_at=now)
        return True

    async def list(
        self, limit: int, offset: int = 0, *, redeemable_at: datetime | None = None
    ) -> Sequence[RedemptionCode]:
        found = sorted(self.s.codes.values(), key=lambda c: c.code)
        found.sort(key=lambda c: c.created_at, reverse=True)  # stable: code order within a time
        if redeemable_at is not None:
            found = [c for c in found if c.redeemed_by is None and not c.expired(redeemable_at)]
        return found[offset : offset + limit]


@define
class _Tasks:
    s: _State

    async def add(self, task: Task) -> None:
        if task.task_id in self.s.tasks:
            raise Conflict(f"duplicate task id {task.task_id}")
        self.s.tasks[task.task_id] = task

    async def get(self, task_id: str, *, for_update: bool = False) -> Task | None:
        return self.s.tasks.get(task_id)

    async def by_trigger(self, trigger_id: str) -> Sequence[Task]:
        return [t for t in self.s.tasks.values() if t.trigger_id == trigger_id]

    async def save(self, task: Task, expected: TaskStatus) -> bool:
        stored = self.s.tasks.get(task.task_id)
        if stored is None or stored.status is not expected:
            return False
        changes = {name: getattr(task, name) for name in MUTABLE_FIELDS}
        self.s.tasks[task.task_id] = evolve(stored, **changes)
        return True

    async def mark_refunded(self, task_id: str) -> bool:
        stored = self.s.tasks.get(task_id)
        if stored is None or stored.refunded:
            return False
        self.s.tasks[task_id] = evolve(stored, refunded=True)
        return True

    def _matching(self, query: TaskQuery) -> list[Task]:
        return [
            t
            for t in reversed(self.s.tasks.values())
            if (query.account_id is None or t.account_id == query.account_id)
            and (query.status is None or t.status is query.status)
        ]

    async def query(self, query: TaskQuery) -> Sequence[Task]:
        return self._matching(query)[query.offset : query.offset + query.limit]

    async def count(self, query: TaskQuery) -> int:
        return len(self._matching(query))

    async def count_by_account(self, status: TaskStatus) -> Mapping[int, int]:
        return Counter(t.account_id for t in self.s.tasks.values() if t.status is status)

    async def by_msg_id(self, msg_id: str) -> Sequence[Task]:
        return [t for t in self.s.tasks.values() if t.msg_id == msg_id]

    async def count_holding(self, provider: Provider) -> int:
        return sum(t.provider is provider and t.holds_slot for t in self.s.tasks.values())

    def _waiting(self, provider: Provider) -> list[Task]:
        return [
            t
            for t in self.s.tasks.values()
            if t.provider is provider and t.status is TaskStatus.NOT_START
        ]

    async def count_waiting(self, provider: Provider) -> int:
        return len(self._waiting(provider))

    async def unfinished_of(
        self, provider: Provider, account_id: int, limit: int
    ) -> Sequence[Task]:
        return [
            t
            for t in self.s.tasks.values()
            if t.provider is provider and t.account_id == account_id and not t.status.terminal
        ][:limit]

    async def next_waiting(self, provider: Provider, worker: str) -> Task | None:
        return next((t for t in self._waiting(provider) if t.worker in (None, worker)), None)

    async def count_waiting_for(self, provider: Provider, worker: str) -> int:
        return sum(t.worker == worker for t in self._waiting(provider))

    async def unfinished_on(self, provider: Provider, worker: str, limit: int) -> Sequence[Task]:
        return [
            t
            for t in self.s.tasks.values()
            if t.provider is provider and t.worker == worker and not t.status.terminal
        ][:limit]

    async def count_holding_by_worker(self, provider: Provider) -> Mapping[str, int]:
        found = Counter(
            t.worker for t in self.s.tasks.values() if t.provider is provider and t.holds_slot
        )
        return {worker: n for worker, n in found.items() if worker is not None}

    async def set_holds_slot(self, task_id: str, held: bool) -> bool:
        stored = self.s.tasks.get(task_id)
        if stored is None or stored.holds_slot == held:
            return False
        self.s.tasks[task_id] = evolve(stored, holds_slot=held)
        return True

    async def stale(
        self, provider: Provider, idle_before: datetime, started_before: datetime, limit: int
    ) -> Sequence[Task]:
        running = (TaskStatus.SUBMITTED, TaskStatus.IN_PROGRESS)
        return [
            t
            for t in self.s.tasks.values()
            if t.provider is provider
            and t.status in running
            and t.started_at is not None
            and ((t.last_event_at or t.started_at) < idle_before or t.started_at < started_before)
        ][:limit]


@define
class _Queue:
    s: _State

    async def lock(self, provider: Provider) -> QueueCounts:
        # a write unit of work already holds the store's one lock
        return self.s.queues.get(provider, QueueCounts(0, 0))

    async def change(self, provider: Provider, *, running: int = 0, waiting: int = 0) -> None:
        now = self.s.queues.get(provider, QueueCounts(0, 0))
        self.s.queues[provider] = QueueCounts(now.running + running, now.waiting + waiting)

    async def peek(self, provider: Provider) -> QueueCounts:
        # a read-only unit of work holds a copy of what was committed when it began
        return self.s.queues.get(provider, QueueCounts(0, 0))


@define
class _Settings:
    s: _State

    async def get(self, name: str) -> str | None:
        return self.s.settings.get(name)

    async def put_if_absent(self, name: str, value: str) -> str:
        return self.s.settings.setdefault(name, value)


@define
class _DiscordAccounts:
    s: _State

    async def list(self) -> Sequence[DiscordAccount]:
        return [self.s.discord_accounts[name] for name in sorted(self.s.discord_accounts)]

    async def get(self, name: str) -> DiscordAccount | None:
        return self.s.discord_accounts.get(name)

    async def add(self, account: DiscordAccount) -> None:
        taken = account.name in self.s.discord_accounts or any(
            a.channel_id == account.channel_id for a in self.s.discord_accounts.values()
        )
        if taken:
            raise AccountNameTaken(f"an account named {account.name} or on its channel exists")
        self.s.discord_accounts[account.name] = account

    async def update(self, account: DiscordAccount) -> bool:
        current = self.s.discord_accounts.get(account.name)
        if current is None:
            return False
        self.s.discord_accounts[account.name] = evolve(
            current,
            guild_id=account.guild_id,
            channel_id=account.channel_id,
            user_token=account.user_token,
            bot_token=account.bot_token,
            concurrency=account.concurrency,
            queue_size=account.queue_size,
            mode=account.mode,
        )
        return True

    def _change(self, name: str, **changes: Any) -> bool:
        current = self.s.discord_accounts.get(name)
        if current is None:
            return False
        self.s.discord_accounts[name] = evolve(current, **changes)
        return True

    async def set_enabled(self, name: str, enabled: bool) -> bool:
        return self._change(name, enabled=enabled)

    async def set_health(
        self, name: str, health: Health, reason: str | None, error: str | None
    ) -> bool:
        current = self.s.discord_accounts.get(name)
        last_error = error if error is not None else current and current.last_error
        return self._change(name, health=health, health_reason=reason, last_error=last_error)

    async def change_running(self, name: str, delta: int, now: datetime | None = None) -> None:
        current = self.s.discord_accounts.get(name)
        if current is None:
            return
        used = {"jobs": current.jobs + delta, "last_used_at": now} if delta > 0 else {}
        self._change(name, running=current.running + delta, **used)

    async def record_failure(self, name: str, error: str) -> int:
        current = self.s.discord_accounts.get(name)
        if current is None:
            return 0
        self._change(name, failures=current.failures + 1, last_error=error[:255])
        return current.failures + 1

    async def clear_failures(self, name: str) -> None:
        self._change(name, failures=0)

    async def remove(self, name: str) -> bool:
        return self.s.discord_accounts.pop(name, None) is not None


@define
class _Uploads:
    s: _State

    async def add(self, upload: UploadRecord) -> None:
        if upload.trigger_id in self.s.uploads:
            raise Conflict(f"trigger id {upload.trigger_id} is taken")
        self.s.uploads[upload.trigger_id] = upload

    async def get(self, trigger_id: str) -> UploadRecord | None:
        return self.s.uploads.get(trigger_id)


@define
class _Webhooks:
    s: _State

    async def add(self, delivery: Delivery) -> None:
        new_id = max(self.s.deliveries, default=0) + 1
        self.s.deliveries[new_id] = evolve(delivery, id=new_id)

    async def add_progress(self, delivery: Delivery) -> bool:
        waiting = any(
            (d.task_id, d.url, d.event, d.status, d.attempts)
            == (delivery.task_id, delivery.url, delivery.event, DeliveryStatus.PENDING, 0)
            for d in self.s.deliveries.values()
        )
        if not waiting:
            await self.add(delivery)
        return not waiting

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> Sequence[Delivery]:
        due = sorted(
            (
                d
                for d in self.s.deliveries.values()
                if d.status is DeliveryStatus.PENDING and d.next_attempt_at <= now
            ),
            key=lambda d: (d.next_attempt_at, d.id or 0),
        )[:limit]
        claimed = [evolve(d, attempts=d.attempts + 1, next_attempt_at=lease_until) for d in due]
        for delivery in claimed:
            assert delivery.id is not None
            self.s.deliveries[delivery.id] = delivery
        return claimed

    async def record(
        self,
        delivery_id: int,
        attempt: int,
        outcome: Outcome,
        status: DeliveryStatus,
        next_attempt_at: datetime,
        now: datetime,
        payload: str,
    ) -> bool:
        current = self.s.deliveries.get(delivery_id)
        if current is None or (current.attempts, current.status) != (
            attempt,
            DeliveryStatus.PENDING,
        ):
            return False
        self.s.deliveries[delivery_id] = evolve(
            current,
            status=status,
            next_attempt_at=next_attempt_at,
            last_status=outcome.status,
            last_error=None if outcome.error is None else outcome.error[:255],
            payload=payload,
            delivered_at=now if status is DeliveryStatus.DELIVERED else None,
        )
        return True

    async def fix_payload(self, delivery_id: int, payload: str) -> str | None:
        current = self.s.deliveries.get(delivery_id)
        if current is None:
            return None
        if current.payload is None:
            self.s.deliveries[delivery_id] = current = evolve(current, payload=payload)
        return current.payload

    async def get(self, delivery_id: int) -> Delivery | None:
        return self.s.deliveries.get(delivery_id)

    async def list(
        self, *, task_id: str | None, statuses: Sequence[DeliveryStatus] | None, limit: int
    ) -> Sequence[Delivery]:
        found = [
            d
            for d in self.s.deliveries.values()
            if (task_id is None or d.task_id == task_id) and (not statuses or d.status in statuses)
        ]
        return sorted(found, key=lambda d: -(d.id or 0))[:limit]

    async def retry(self, delivery_id: int, now: datetime) -> bool:
        current = self.s.deliveries.get(delivery_id)
        if current is None or current.status is DeliveryStatus.PENDING:
            return False
        self.s.deliveries[delivery_id] = evolve(
            current, status=DeliveryStatus.PENDING, next_attempt_at=now
        )
        return True


@define
class _Idempotency:
    s: _State

    async def claim(self, record: KeyRecord) -> KeyRecord | None:
        held = self.s.keys.get((record.account_id, record.key))
        if held is None or held.expires_at < record.created_at:
            self.s.keys[(record.account_id, record.key)] = record
            return None
        return held

    async def complete(
        self, account_id: int, key: str, claim_id: str, status: int, body: str
    ) -> bool:
        held = self.s.keys.get((account_id, key))
        if held is None or held.claim_id != claim_id:
            return False
        self.s.keys[(account_id, key)] = evolve(
            held, state=KeyState.DONE, response_status=status, response_body=body
        )
        return True

    async def purge(self, now: datetime) -> int:
        expired = [k for k, r in self.s.keys.items() if r.expires_at < now]
        for key in expired:
            del self.s.keys[key]
        return len(expired)


@define
class _Leases:
    s: _State

    async def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        current = self.s.leases.get(name)
        if current is not None and current[0] != holder and current[1] >= now:
            return False
        self.s.leases[name] = (holder, until)
        return True

    async def holder(self, name: str, now: datetime) -> str | None:
        current = self.s.leases.get(name)
        return current[0] if current is not None and current[1] >= now else None

    async def release(self, name: str, holder: str) -> None:
        if self.s.leases.get(name, ("", _NEVER))[0] == holder:
            del self.s.leases[name]


@define
class _Stats:
    s: _State

    async def counts(self) -> Counts:
        live = [a for a in self.s.accounts.values() if a.deleted_at is None]
        return Counts(
            accounts=len(live),
            tasks=len(self.s.tasks),
            successful_tasks=sum(t.status is TaskStatus.SUCCESS for t in self.s.tasks.values()),
            codes=len(self.s.codes),
            used_codes=sum(c.redeemed_by is not None for c in self.s.codes.values()),
            credits=sum(a.credits for a in live),
        )


@define
class MemoryUnitOfWork:
    _store: MemoryStore
    _readonly: bool
    _state: _State = field(init=False)
    accounts: _Accounts = field(init=False)
    ledger: _Ledger = field(init=False)
    codes: _Codes = field(init=False)
    tasks: _Tasks = field(init=False)
    queue: _Queue = field(init=False)
    settings: _Settings = field(init=False)
    leases: _Leases = field(init=False)
    uploads: _Uploads = field(init=False)
    discord_accounts: _DiscordAccounts = field(init=False)
    webhooks: _Webhooks = field(init=False)
    idempotency: _Idempotency = field(init=False)
    stats: _Stats = field(init=False)

    async def __aenter__(self) -> MemoryUnitOfWork:
        if not self._readonly:
            await self._store._lock.acquire()
        self._state = self._store._state.copy()
        self.accounts = _Accounts(self._state)
        self.ledger = _Ledger(self._state)
        self.codes = _Codes(self._state)
        self.tasks = _Tasks(self._state)
        self.queue = _Queue(self._state)
        self.settings = _Settings(self._state)
        self.leases = _Leases(self._state)
        self.uploads = _Uploads(self._state)
        self.discord_accounts = _DiscordAccounts(self._state)
        self.webhooks = _Webhooks(self._state)
        self.idempotency = _Idempotency(self._state)
        self.stats = _Stats(self._state)
        return self

    async def commit(self) -> None:
        if self._readonly:
            raise RuntimeError("a read-only unit of work cannot commit")
        self._store._state = self._state

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._readonly:
            self._store._lock.release()


@define
class MemoryStore:
    """Everything in process memory; for tests, demos and embedding experiments."""

    _state: _State = field(factory=_State)
    _lock: asyncio.Lock = field(factory=asyncio.Lock)

    def unit_of_work(self, *, readonly: bool = False) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self, readonly)

    async def ping(self) -> None:
        return None

    async def migrate(self) -> Sequence[int]:
        return ()

    async def pending_migrations(self) -> Sequence[int]:
        return ()

    async def close(self) -> None:
        return None

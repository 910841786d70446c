"""The SQL repositories, written once for all three dialects."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from attrs import define, evolve, field, frozen

from mjcore.accounts import Account
from mjcore.codes import RedemptionCode
from mjcore.discord_accounts import AccountNameTaken, DiscordAccount, Health, Mode, Secret
from mjcore.errors import Conflict, UserNameTaken
from mjcore.idempotency import KeyRecord, KeyState
from mjcore.ledger import EntryKind, LedgerEntry, Tally
from mjcore.ports import AccountChanges, Counts, NewAccount, QueueCounts, TaskQuery, UploadRecord
from mjcore.tasks import MUTABLE_FIELDS, Provider, Task, TaskStatus
from mjcore.webhooks import Delivery, DeliveryStatus, HookStyle, Outcome, WebhookEvent

from ..secrets import KEPT_KEY, Sealer, SealError, new_key
from .database import DuplicateKey, Row
from .session import Session

_UNKNOWN = datetime(1, 1, 1, tzinfo=UTC)  # a time a row should have and does not

_ACCOUNT_COLUMNS = (
    "id, user_name, app_key, token_total, token_use, created_at, updated_at,"
    " password_hash, disabled, deleted_at, token_version"
)
_TOTAL_KINDS = ", ".join(f"'{kind.value}'" for kind in EntryKind if kind.moves_total)


def _account(row: Row, db: Session) -> Account:
    ts = db.dialect.timestamp
    created = ts(row["created_at"])
    assert created is not None
    return Account(
        id=int(row["id"]),
        user_name=row["user_name"],
        app_key_digest=row["app_key"],
        token_total=int(row["token_total"]),
        token_use=int(row["token_use"]),
        created_at=created,
        updated_at=ts(row["updated_at"]) or created,
        password_hash=row["password_hash"],
        disabled=bool(row["disabled"]),
        deleted_at=ts(row["deleted_at"]),
        token_version=int(row["token_version"]),
    )


@frozen
class SqlAccounts:
    db: Session

    async def add(self, new: NewAccount) -> Account:
        try:
            account_id = await self.db.insert(
                "INSERT INTO user_info (user_name, app_key, token_total, token_use, created_at,"
                " updated_at, password_hash, disabled)"
                " VALUES (:name, :key, :total, 0, :now, :now, :password_hash, 0)",
                name=new.user_name,
                key=new.app_key_digest,
                total=new.token_total,
                now=new.created_at,
                password_hash=new.password_hash,
            )
        except DuplicateKey as exc:
            raise UserNameTaken(f"user name {new.user_name!r} is taken") from exc
        account = await self.get(account_id)
        assert account is not None
        return account

    async def _one(self, where: str, for_update: bool, **params: Any) -> Account | None:
        lock = self.db.dialect.for_update if for_update else ""
        row = await self.db.one(
            f"SELECT {_ACCOUNT_COLUMNS} FROM user_info WHERE {where}{lock}", **params
        )
        return None if row is None else _account(row, self.db)

    async def get(self, account_id: int, *, for_update: bool = False) -> Account | None:
        return await self._one("id = :id", for_update, id=account_id)

    async def by_name(self, user_name: str, *, for_update: bool = False) -> Account | None:
        return await self._one("user_name = :name", for_update, name=user_name)

    async def by_key_digest(self, digest: str) -> Account | None:
        return await self._one("app_key = :key", False, key=digest)

    async def by_key_digest_with_task(
        self, digest: str, task_id: str
    ) -> tuple[Account | None, Task | None]:
        row = await self.db.one(_KEY_WITH_TASK, key=digest, task_id=task_id)
        if row is None:
            return None, None
        if row["t_task_id"] is None:
            return _account(row, self.db), None
        task_row = {name: row[f"t_{name}"] for name in _TASK_NAMES}
        return _account(row, self.db), _task(task_row, self.db)

    async def list(self, limit: int, offset: int = 0) -> Sequence[Account]:
        rows = await self.db.all(
            f"SELECT {_ACCOUNT_COLUMNS} FROM user_info ORDER BY id LIMIT :limit OFFSET :offset",
            limit=limit,
            offset=offset,
        )
        return [_account(row, self.db) for row in rows]

    async def debit(self, account_id: int, cost: int, now: datetime) -> bool:
        matched = await self.db.execute(
            "UPDATE user_info SET token_use = token_use + :cost, updated_at = :now"
            " WHERE id = :id AND token_total - token_use >= :cost"
            " AND disabled = 0 AND deleted_at IS NULL",
            cost=cost,
            now=now,
            id=account_id,
        )
        return matched == 1

    async def change_use(self, account_id: int, delta: int, now: datetime) -> None:
        await self.db.execute(
            "UPDATE user_info SET token_use = token_use + :delta, updated_at = :now WHERE id = :id",
            delta=delta,
            now=now,
            id=account_id,
        )

    async def change_total(self, account_id: int, delta: int, now: datetime) -> None:
        await self.db.execute(
            "UPDATE user_info SET token_total = token_total + :delta, updated_at = :now"
            " WHERE id = :id",
            delta=delta,
            now=now,
            id=account_id,
        )

    async def update_flags(self, account_id: int, now: datetime, changes: AccountChanges) -> None:
        columns = {"app_key_digest": "app_key"}  # the seed's column name
        given = {columns.get(name, name): value for name, value in changes.given().items()}
        assignments = "".join(f", {column} = :{column}" for column in given)
        await self.db.execute(
            f"UPDATE user_info SET updated_at = :now{assignments} WHERE id = :id",
            now=now,
            id=account_id,
            **given,
        )


@frozen
class SqlLedger:
    db: Session

    async def append(self, entry: LedgerEntry) -> None:
        await self.db.insert(
            "INSERT INTO ledger_entry (account_id, delta, kind, reference, created_at)"
            " VALUES (:account_id, :delta, :kind, :reference, :created_at)",
            account_id=entry.account_id,
            delta=entry.delta,
            kind=entry.kind,
            reference=entry.reference,
            created_at=entry.created_at,
        )

    async def entries(self, account_id: int) -> Sequence[LedgerEntry]:
        rows = await self.db.all(
            "SELECT id, account_id, delta, kind, reference, created_at FROM ledger_entry"
            " WHERE account_id = :account_id ORDER BY id",
            account_id=account_id,
        )
        ts = self.db.dialect.timestamp
        return [
            LedgerEntry(
                account_id=int(row["account_id"]),
                delta=int(row["delta"]),
                kind=EntryKind(row["kind"]),
                reference=row["reference"],
                created_at=ts(row["created_at"]) or _UNKNOWN,
                id=int(row["id"]),
            )
            for row in rows
        ]

    async def tallies(self) -> Sequence[Tally]:
        rows = await self.db.all(
            "SELECT u.id, u.user_name, u.token_total, u.token_use,"
            f" COALESCE(SUM(CASE WHEN e.kind IN ({_TOTAL_KINDS}) THEN e.delta ELSE 0 END), 0)"
            " AS entries_total,"
            f" COALESCE(SUM(CASE WHEN e.kind IN ({_TOTAL_KINDS}) THEN 0 ELSE -e.delta END), 0)"
            " AS entries_use"
            " FROM user_info u LEFT JOIN ledger_entry e ON e.account_id = u.id"
            " GROUP BY u.id, u.user_name, u.token_total, u.token_use ORDER BY u.id"
        )
        return [
            Tally(
                account_id=int(row["id"]),
                user_name=row["user_name"],
                token_total=int(row["token_total"]),
                token_use=int(row["token_use"]),
                entries_total=int(row["entries_total"]),
                entries_use=int(row["entries_use"]),
            )
            for row in rows
        ]


def _code(row: Row, db: Session) -> RedemptionCode:
    ts = db.dialect.timestamp
    return RedemptionCode(
        code=row["code"],
        credits=int(row["credits"]),
        created_at=ts(row["created_at"]) or _UNKNOWN,
        expires_at=ts(row["expires_at"]),
        redeemed_by=None if row["redeemed_by"] is None else int(row["redeemed_by"]),
        redeemed_at=ts(row["redeemed_at"]),
    )


@frozen
class SqlCodes:
    db: Session

    async def add_many(self, codes: Sequence[RedemptionCode]) -> None:
        try:
            for code in codes:
                await self.db.execute(
                    "INSERT INTO redemption_code (code, credits, created_at, expires_at)"
                    " VALUES (:code, :credits, :created_at, :expires_at)",
                    code=code.code,
                    credits=code.credits,
                    created_at=code.created_at,
                    expires_at=code.expires_at,
                )
        except DuplicateKey as exc:
            raise Conflict("duplicate redemption code") from exc

    async def get(self, code: str) -> RedemptionCode | None:
        row = await self.db.one(
            "SELECT code, credits, created_at, expires_at, redeemed_by, redeemed_at"
            " FROM redemption_code WHERE code = :code",
            code=code,
        )
        return None if row is None else _code(row, self.db)

    async def redeem(self, code: str, account_id: int, now: datetime) -> bool:
        matched = await self.db.execute(
            "UPDATE redemption_code SET redeemed_by = :account_id, redeemed_at = :now"
            " WHERE code = :code AND redeemed_by IS NULL"
            " AND (expires_at IS NULL OR expires_at > :now)",
            account_id=account_id,
            now=now,
            code=code,
        )
        return matched == 1

    async def expire(self, code: str, now: datetime) -> bool:
        matched = await self.db.execute(
            "UPDATE redemption_code SET expires_at = :now"
            " WHERE code = :code AND redeemed_by IS NULL"
            " AND (expires_at IS NULL OR expires_at > :now)",
            now=now,
            code=code,
        )
        return matched == 1

    async def list(
        self, limit: int, offset: int = 0, *, redeemable_at: datetime | None = None
    ) -> Sequence[RedemptionCode]:
        where = (
            ""
            if redeemable_at is None
            else " WHERE redeemed_by IS NULL AND (expires_at IS NULL OR expires_at > :now)"
        )
        rows = await self.db.all(
            "SELECT code, credits, created_at, expires_at, redeemed_by, redeemed_at"
            f" FROM redemption_code{where}"
            " ORDER BY created_at DESC, code LIMIT :limit OFFSET :offset",
            now=redeemable_at,
            limit=limit,
            offset=offset,
        )
        return [_code(row, self.db) for row in rows]


_TASK_COLUMNS = (
    "task_id, account_id, provider, action, prompt, cost, created_at, status, params,"
    " parent_task_id, progress, image_url, fail_reason, trigger_id, msg_id, msg_hash,"
    " provider_ref, result, refunded, holds_slot, started_at, finished_at, last_event_at,"
    " worker"
)
_JSON_FIELDS = ("params", "result")
_TASK_NAMES = tuple(name.strip() for name in _TASK_COLUMNS.split(","))
_INSERT_TASK = (
    f"INSERT INTO task ({_TASK_COLUMNS}) VALUES ({', '.join(':' + n for n in _TASK_NAMES)})"
)


_KEY_WITH_TASK = (
    "SELECT "
    + ", ".join(f"u.{name.strip()} AS {name.strip()}" for name in _ACCOUNT_COLUMNS.split(","))
    + ", "
    + ", ".join(f"t.{name} AS t_{name}" for name in _TASK_NAMES)
    + " FROM user_info u LEFT JOIN task t ON t.task_id = :task_id AND t.account_id = u.id"
    " WHERE u.app_key = :key"
)


def _task(row: Row, db: Session) -> Task:
    ts = db.dialect.timestamp
    return Task(
        task_id=row["task_id"],
        account_id=int(row["account_id"]),
        provider=Provider(row["provider"]),
        action=row["action"],
        prompt=row["prompt"],
        cost=int(row["cost"]),
        created_at=ts(row["created_at"]) or _UNKNOWN,
        status=TaskStatus(row["status"]),
        params=json.loads(row["params"]),
        parent_task_id=row["parent_task_id"],
        progress=int(row["progress"]),
        image_url=row["image_url"],
        fail_reason=row["fail_reason"],
        trigger_id=row["trigger_id"],
        msg_id=row["msg_id"],
        msg_hash=row["msg_hash"],
        provider_ref=row["provider_ref"],
        result=json.loads(row["result"]),
        refunded=bool(row["refunded"]),
        holds_slot=bool(row["holds_slot"]),
        started_at=ts(row["started_at"]),
        finished_at=ts(row["finished_at"]),
        last_event_at=ts(row["last_event_at"]),
        worker=row["worker"],
    )


def _column_value(task: Task, name: str) -> Any:
    value = getattr(task, name)
    return json.dumps(value, sort_keys=True) if name in _JSON_FIELDS else value


@frozen
class SqlTasks:
    db: Session

    async def add(self, task: Task) -> None:
        try:
            await self.db.insert(
                _INSERT_TASK, **{name: _column_value(task, name) for name in _TASK_NAMES}
            )
        except DuplicateKey as exc:
            raise Conflict(f"duplicate task id {task.task_id}") from exc

    async def get(self, task_id: str, *, for_update: bool = False) -> Task | None:
        lock = self.db.dialect.for_update if for_update else ""
        row = await self.db.one(
            f"SELECT {_TASK_COLUMNS} FROM task WHERE task_id = :task_id{lock}", task_id=task_id
        )
        return None if row is None else _task(row, self.db)

    async def by_trigger(self, trigger_id: str) -> Sequence[Task]:
        rows = await self.db.all(
            f"SELECT {_TASK_COLUMNS} FROM task WHERE trigger_id = :trigger_id ORDER BY id",
            trigger_id=trigger_id,
        )
        return [_task(row, self.db) for row in rows]

    async def save(self, task: Task, expected: TaskStatus) -> bool:
        assignments = ", ".join(f"{name} = :{name}" for name in MUTABLE_FIELDS)
        matched = await self.db.execute(
            f"UPDATE task SET {assignments} WHERE task_id = :task_id AND status = :expected",
            task_id=task.task_id,
            expected=expected,
            **{name: _column_value(task, name) for name in MUTABLE_FIELDS},
        )
        return matched == 1

    async def mark_refunded(self, task_id: str) -> bool:
        matched = await self.db.execute(
            "UPDATE task SET refunded = 1 WHERE task_id = :task_id AND refunded = 0",
            task_id=task_id,
        )
        return matched == 1

    @staticmethod
    def _where(query: TaskQuery) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = ["1 = 1"]
        params: dict[str, Any] = {}
        if query.account_id is not None:
            clauses.append("account_id = :account_id")
            params["account_id"] = query.account_id
        if query.status is not None:
            clauses.append("status = :status")
            params["status"] = query.status
        return " AND ".join(clauses), params

    async def query(self, query: TaskQuery) -> Sequence[Task]:
        where, params = self._where(query)
        rows = await self.db.all(
            f"SELECT {_TASK_COLUMNS} FROM task WHERE {where}"
            " ORDER BY id DESC LIMIT :limit OFFSET :offset",
            limit=query.limit,
            offset=query.offset,
            **params,
        )
        return [_task(row, self.db) for row in rows]

    async def count(self, query: TaskQuery) -> int:
        where, params = self._where(query)
        return int(await self.db.scalar(f"SELECT COUNT(*) FROM task WHERE {where}", **params))

    async def count_by_account(self, status: TaskStatus) -> Mapping[int, int]:
        rows = await self.db.all(
            "SELECT account_id, COUNT(*) AS n FROM task WHERE status = :status GROUP BY account_id",
            status=status,
        )
        return {int(row["account_id"]): int(row["n"]) for row in rows}

    async def by_msg_id(self, msg_id: str) -> Sequence[Task]:
        rows = await self.db.all(
            f"SELECT {_TASK_COLUMNS} FROM task WHERE msg_id = :msg_id ORDER BY id", msg_id=msg_id
        )
        return [_task(row, self.db) for row in rows]

    async def count_holding(self, provider: Provider) -> int:
        return int(
            await self.db.scalar(
                "SELECT COUNT(*) FROM task WHERE provider = :provider AND holds_slot = 1",
                provider=provider,
            )
        )

    async def count_waiting(self, provider: Provider) -> int:
        return int(
            await self.db.scalar(
                "SELECT COUNT(*) FROM task WHERE provider = :provider AND status = :status",
                provider=provider,
                status=TaskStatus.NOT_START,
            )
        )

    async def unfinished_of(
        self, provider: Provider, account_id: int, limit: int
    ) -> Sequence[Task]:
        rows = await self.db.all(
            f"SELECT {_TASK_COLUMNS} FROM task WHERE account_id = :account_id"
            " AND provider = :provider AND status IN (:waiting, :submitted, :in_progress)"
            " ORDER BY id LIMIT :limit",
            waiting=TaskStatus.NOT_START,
            submitted=TaskStatus.SUBMITTED,
            in_progress=TaskStatus.IN_PROGRESS,
            account_id=account_id,
            provider=provider,
            limit=limit,
        )
        return [_task(row, self.db) for row in rows]

    async def next_waiting(self, provider: Provider, worker: str) -> Task | None:
        row = await self.db.one(
            f"SELECT {_TASK_COLUMNS} FROM task WHERE provider = :provider AND status = :status"
            " AND (worker IS NULL OR worker = :worker) ORDER BY id LIMIT 1",
            provider=provider,
            status=TaskStatus.NOT_START,
            worker=worker,
        )
        return None if row is None else _task(row, self.db)

    async def count_waiting_for(self, provider: Provider, worker: str) -> int:
        return int(
            await self.db.scalar(
                "SELECT COUNT(*) FROM task WHERE provider = :provider AND status = :status"
                " AND worker = :worker",
                provider=provider,
                status=TaskStatus.NOT_START,
                worker=worker,
            )
        )

    async def unfinished_on(self, provider: Provider, worker: str, limit: int) -> Sequence[Task]:
        rows = await self.db.all(
            f"SELECT {_TASK_COLUMNS} FROM task WHERE worker = :worker AND provider = :provider"
            " AND status IN (:waiting, :submitted, :in_progress) ORDER BY id LIMIT :limit",
            waiting=TaskStatus.NOT_START,
            submitted=TaskStatus.SUBMITTED,
            in_progress=TaskStatus.IN_PROGRESS,
            worker=worker,
            provider=provider,
            limit=limit,
        )
        return [_task(row, self.db) for row in rows]

    async def count_holding_by_worker(self, provider: Provider) -> Mapping[str, int]:
        rows = await self.db.all(
            "SELECT worker, COUNT(*) AS n FROM task WHERE provider = :provider"
            " AND holds_slot = 1 AND worker IS NOT NULL GROUP BY worker",
            provider=provider,
        )
        return {str(row["worker"]): int(row["n"]) for row in rows}

    async def set_holds_slot(self, task_id: str, held: bool) -> bool:
        matched = await self.db.execute(
            "UPDATE task SET holds_slot = :held WHERE task_id = :task_id AND holds_slot = :was",
            held=held,
            was=not held,
            task_id=task_id,
        )
        return matched == 1

    async def stale(
        self, provider: Provider, idle_before: datetime, started_before: datetime, limit: int
    ) -> Sequence[Task]:
        rows = await self.db.all(
            f"SELECT {_TASK_COLUMNS} FROM task WHERE provider = :provider"
            " AND status IN (:submitted, :in_progress)"
            " AND (COALESCE(last_event_at, started_at) < :idle_before"
            " OR started_at < :started_before)"
            " ORDER BY id LIMIT :limit",
            provider=provider,
            submitted=TaskStatus.SUBMITTED,
            in_progress=TaskStatus.IN_PROGRESS,
            idle_before=idle_before,
            started_before=started_before,
            limit=limit,
        )
        return [_task(row, self.db) for row in rows]


@frozen
class SqlQueue:
    db: Session

    async def lock(self, provider: Provider) -> QueueCounts:
        # FOR UPDATE holds the row on MySQL and PostgreSQL; on SQLite, BEGIN IMMEDIATE
        # already holds the whole database
        row = await self.db.one(
            "SELECT running, waiting FROM provider_queue WHERE name = :name"
            + self.db.dialect.for_update,
            name=provider,
        )
        if row is None:
            raise RuntimeError(f"no queue row for {provider}: is the schema migrated?")
        return QueueCounts(int(row["running"]), int(row["waiting"]))

    async def change(self, provider: Provider, *, running: int = 0, waiting: int = 0) -> None:
        await self.db.execute(
            "UPDATE provider_queue SET running = running + :running,"
            " waiting = waiting + :waiting WHERE name = :name",
            running=running,
            waiting=waiting,
            name=provider,
        )

    async def peek(self, provider: Provider) -> QueueCounts:
        row = await self.db.one(
            "SELECT running, waiting FROM provider_queue WHERE name = :name", name=provider
        )
        if row is None:  # a provider without a queue has nothing in it
            return QueueCounts(0, 0)
        return QueueCounts(int(row["running"]), int(row["waiting"]))


@frozen
class SqlSettings:
    db: Session

    async def get(self, name: str) -> str | None:
        value = await self.db.scalar(
            "SELECT value FROM mjcore_setting WHERE name = :name", name=name
        )
        return None if value is None else str(value)

    async def put_if_absent(self, name: str, value: str) -> str:
        if_absent = self.db.dialect.if_absent("name")
        await self.db.execute(
            f"INSERT INTO mjcore_setting (name, value) VALUES (:name, :value){if_absent}",
            name=name,
            value=value,
        )
        stored = await self.get(name)
        assert stored is not None
        return stored


@define
class AccountKey:
    """The key Discord tokens are sealed with: ``MJCORE_ACCOUNT_KEY`` (``given``), else the
    one the database keeps, remembered by the store once read (``kept``)."""

    given: str | None = field(default=None, repr=False)
    kept: str | None = field(default=None, repr=False)


_POOL_COLUMNS = (
    "name, guild_id, channel_id, user_token, bot_token, concurrency, queue_size, mode,"
    " enabled, health, health_reason, last_error, running, jobs, failures, last_used_at,"
    " created_at"
)


@frozen
class SqlDiscordAccounts:
    """Tokens are sealed before they are written and opened when read (see
    :mod:`adapters.secrets`): the table never holds one in the clear."""

    db: Session
    key: AccountKey = field(factory=AccountKey)

    async def _sealer(self, *, create: bool) -> Sealer | None:
        if self.key.given:
            return Sealer(self.key.given)
        if self.key.kept is None:  # once per store: a kept key never changes
            settings = SqlSettings(self.db)
            self.key.kept = await (
                settings.put_if_absent(KEPT_KEY, new_key()) if create else settings.get(KEPT_KEY)
            )
        return None if self.key.kept is None else Sealer(self.key.kept)

    async def _account(self, row: Row, sealer: Sealer | None) -> DiscordAccount:
        if sealer is None:
            raise SealError("Discord tokens are stored but no key to open them is")
        ts = self.db.dialect.timestamp
        bot = row["bot_token"]
        return DiscordAccount(
            name=row["name"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            user_token=Secret(sealer.open(row["user_token"])),
            bot_token=None if bot is None else Secret(sealer.open(bot)),
            concurrency=int(row["concurrency"]),
            queue_size=int(row["queue_size"]),
            mode=Mode(row["mode"]),
            enabled=bool(row["enabled"]),
            health=Health(row["health"]),
            health_reason=row["health_reason"],
            last_error=row["last_error"],
            running=int(row["running"]),
            jobs=int(row["jobs"]),
            failures=int(row["failures"]),
            last_used_at=ts(row["last_used_at"]),
            created_at=ts(row["created_at"]),
        )

    async def list(self) -> Sequence[DiscordAccount]:
        rows = await self.db.all(f"SELECT {_POOL_COLUMNS} FROM discord_account ORDER BY name")
        if not rows:
            return []
        sealer = await self._sealer(create=False)
        return [await self._account(row, sealer) for row in rows]

    async def get(self, name: str) -> DiscordAccount | None:
        row = await self.db.one(
            f"SELECT {_POOL_COLUMNS} FROM discord_account WHERE name = :name", name=name
        )
        if row is None:
            return None
        return await self._account(row, await self._sealer(create=False))

    async def _sealed(self, account: DiscordAccount) -> dict[str, Any]:
        sealer = await self._sealer(create=True)
        assert sealer is not None
        bot = account.bot_token
        return {
            "user_token": sealer.seal(account.user_token.reveal()),
            "bot_token": None if bot is None else sealer.seal(bot.reveal()),
        }

    async def add(self, account: DiscordAccount) -> None:
        try:
            await self.db.execute(
                f"INSERT INTO discord_account ({_POOL_COLUMNS}) VALUES (:name, :guild_id,"
                " :channel_id, :user_token, :bot_token, :concurrency, :queue_size, :mode,"
                " :enabled, :health, :health_reason, :last_error, 0, 0, 0, NULL, :created_at)",
                name=account.name,
                guild_id=account.guild_id,
                channel_id=account.channel_id,
                concurrency=account.concurrency,
                queue_size=account.queue_size,
                mode=account.mode,
                enabled=account.enabled,
                health=account.health,
                health_reason=account.health_reason,
                last_error=account.last_error,
                created_at=account.created_at or datetime.now(UTC),
                **await self._sealed(account),
            )
        except DuplicateKey as exc:
            raise AccountNameTaken(
                f"an account named {account.name} or on channel {account.channel_id} exists"
            ) from exc

    async def update(self, account: DiscordAccount) -> bool:
        try:
            matched = await self.db.execute(
                "UPDATE discord_account SET guild_id = :guild_id, channel_id = :channel_id,"
                " user_token = :user_token, bot_token = :bot_token, concurrency = :concurrency,"
                " queue_size = :queue_size, mode = :mode WHERE name = :name",
                name=account.name,
                guild_id=account.guild_id,
                channel_id=account.channel_id,
                concurrency=account.concurrency,
                queue_size=account.queue_size,
                mode=account.mode,
                **await self._sealed(account),
            )
        except DuplicateKey as exc:
            raise AccountNameTaken(f"channel {account.channel_id} has an account") from exc
        return matched == 1

    async def set_enabled(self, name: str, enabled: bool) -> bool:
        matched = await self.db.execute(
            "UPDATE discord_account SET enabled = :enabled WHERE name = :name",
            enabled=enabled,
            name=name,
        )
        return matched == 1

    async def set_health(
        self, name: str, health: Health, reason: str | None, error: str | None
    ) -> bool:
        matched = await self.db.execute(
            "UPDATE discord_account SET health = :health, health_reason = :reason,"
            " last_error = COALESCE(:error, last_error) WHERE name = :name",
            health=health,
            reason=None if reason is None else reason[:255],
            error=None if error is None else error[:255],
            name=name,
        )
        return matched == 1

    async def change_running(self, name: str, delta: int, now: datetime | None = None) -> None:
        if delta > 0:
            await self.db.execute(
                "UPDATE discord_account SET running = running + :delta, jobs = jobs + :delta,"
                " last_used_at = :now WHERE name = :name",
                delta=delta,
                now=now,
                name=name,
            )
        else:
            await self.db.execute(
                "UPDATE discord_account SET running = running + :delta WHERE name = :name",
                delta=delta,
                name=name,
            )

    async def record_failure(self, name: str, error: str) -> int:
        await self.db.execute(
            "UPDATE discord_account SET failures = failures + 1, last_error = :error"
            " WHERE name = :name",
            error=error[:255],
            name=name,
        )
        return int(
            await self.db.scalar(
                "SELECT failures FROM discord_account WHERE name = :name", name=name
            )
            or 0
        )

    async def clear_failures(self, name: str) -> None:
        await self.db.execute(
            "UPDATE discord_account SET failures = 0 WHERE name = :name AND failures <> 0",
            name=name,
        )

    async def remove(self, name: str) -> bool:
        matched = await self.db.execute("DELETE FROM discord_account WHERE name = :name", name=name)
        return matched == 1


@frozen
class SqlUploads:
    db: Session

    async def add(self, upload: UploadRecord) -> None:
        try:
            await self.db.execute(
                "INSERT INTO upload (trigger_id, account_id, upload_filename, created_at, worker)"
                " VALUES (:trigger_id, :account_id, :upload_filename, :created_at, :worker)",
                worker=upload.worker,
                trigger_id=upload.trigger_id,
                account_id=upload.account_id,
                upload_filename=upload.upload_filename,
                created_at=upload.created_at,
            )
        except DuplicateKey as exc:
            raise Conflict(f"trigger id {upload.trigger_id} is taken") from exc

    async def get(self, trigger_id: str) -> UploadRecord | None:
        row = await self.db.one(
            "SELECT trigger_id, account_id, upload_filename, created_at, worker FROM upload"
            " WHERE trigger_id = :trigger_id",
            trigger_id=trigger_id,
        )
        if row is None:
            return None
        return UploadRecord(
            trigger_id=row["trigger_id"],
            account_id=int(row["account_id"]),
            upload_filename=row["upload_filename"],
            created_at=self.db.dialect.timestamp(row["created_at"]) or _UNKNOWN,
            worker=row["worker"],
        )


_DELIVERY_COLUMNS = (
    "id, webhook_id, task_id, event, url, style, status, attempts, next_attempt_at, payload,"
    " last_status, last_error, created_at, delivered_at"
)


def _delivery(row: Row, db: Session) -> Delivery:
    ts = db.dialect.timestamp
    return Delivery(
        id=int(row["id"]),
        webhook_id=row["webhook_id"],
        task_id=row["task_id"],
        event=WebhookEvent(row["event"]),
        url=row["url"],
        style=HookStyle(row["style"]),
        status=DeliveryStatus(row["status"]),
        attempts=int(row["attempts"]),
        next_attempt_at=ts(row["next_attempt_at"]) or _UNKNOWN,
        payload=row["payload"],
        last_status=None if row["last_status"] is None else int(row["last_status"]),
        last_error=row["last_error"],
        created_at=ts(row["created_at"]) or _UNKNOWN,
        delivered_at=ts(row["delivered_at"]),
    )


@frozen
class SqlWebhooks:
    db: Session

    async def add(self, delivery: Delivery) -> None:
        await self.db.execute(
            "INSERT INTO webhook_delivery (webhook_id, task_id, event, url, style, status,"
            " attempts, next_attempt_at, created_at)"
            " VALUES (:webhook_id, :task_id, :event, :url, :style, :status, 0,"
            " :next_attempt_at, :created_at)",
            webhook_id=delivery.webhook_id,
            task_id=delivery.task_id,
            event=delivery.event,
            url=delivery.url,
            style=delivery.style,
            status=delivery.status,
            next_attempt_at=delivery.next_attempt_at,
            created_at=delivery.created_at,
        )

    async def add_progress(self, delivery: Delivery) -> bool:
        waiting = await self.db.scalar(
            "SELECT COUNT(*) FROM webhook_delivery WHERE task_id = :task_id AND url = :url"
            " AND event = :event AND status = :pending AND attempts = 0",
            task_id=delivery.task_id,
            url=delivery.url,
            event=delivery.event,
            pending=DeliveryStatus.PENDING,
        )
        if int(waiting):
            return False
        await self.add(delivery)
        return True

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> Sequence[Delivery]:
        rows = await self.db.all(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_delivery"
            " WHERE status = :pending AND next_attempt_at <= :now"
            " ORDER BY next_attempt_at, id LIMIT :limit" + self.db.dialect.skip_locked,
            pending=DeliveryStatus.PENDING,
            now=now,
            limit=limit,
        )
        claimed = []
        for row in rows:
            delivery = _delivery(row, self.db)
            await self.db.execute(
                "UPDATE webhook_delivery SET attempts = attempts + 1,"
                " next_attempt_at = :lease_until WHERE id = :id",
                lease_until=lease_until,
                id=delivery.id,
            )
            claimed.append(
                evolve(delivery, attempts=delivery.attempts + 1, next_attempt_at=lease_until)
            )
        return claimed

    async def fix_payload(self, delivery_id: int, payload: str) -> str | None:
        await self.db.execute(
            "UPDATE webhook_delivery SET payload = :payload WHERE id = :id AND payload IS NULL",
            payload=payload,
            id=delivery_id,
        )
        kept = await self.db.scalar(
            "SELECT payload FROM webhook_delivery WHERE id = :id", id=delivery_id
        )
        return None if kept is None else str(kept)

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
        matched = await self.db.execute(
            "UPDATE webhook_delivery SET status = :status, next_attempt_at = :next_attempt_at,"
            " last_status = :last_status, last_error = :last_error, payload = :payload,"
            " delivered_at = :delivered_at"
            " WHERE id = :id AND attempts = :attempt AND status = :pending",
            status=status,
            next_attempt_at=next_attempt_at,
            last_status=outcome.status,
            last_error=None if outcome.error is None else outcome.error[:255],
            payload=payload,
            delivered_at=now if status is DeliveryStatus.DELIVERED else None,
            id=delivery_id,
            attempt=attempt,
            pending=DeliveryStatus.PENDING,
        )
        return matched == 1

    async def get(self, delivery_id: int) -> Delivery | None:
        row = await self.db.one(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_delivery WHERE id = :id", id=delivery_id
        )
        return None if row is None else _delivery(row, self.db)

    async def list(
        self, *, task_id: str | None, statuses: Sequence[DeliveryStatus] | None, limit: int
    ) -> Sequence[Delivery]:
        clauses, params = ["1 = 1"], {}
        if task_id is not None:
            clauses.append("task_id = :task_id")
            params["task_id"] = task_id
        for i, status in enumerate(statuses or ()):
            params[f"s{i}"] = status
        if statuses:
            clauses.append(f"status IN ({', '.join(f':s{i}' for i in range(len(statuses)))})")
        rows = await self.db.all(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_delivery WHERE {' AND '.join(clauses)}"
            " ORDER BY id DESC LIMIT :limit",
            limit=limit,
            **params,
        )
        return [_delivery(row, self.db) for row in rows]

    async def retry(self, delivery_id: int, now: datetime) -> bool:
        matched = await self.db.execute(
            "UPDATE webhook_delivery SET status = :pending, next_attempt_at = :now"
            " WHERE id = :id AND status <> :pending",
            pending=DeliveryStatus.PENDING,
            now=now,
            id=delivery_id,
        )
        return matched == 1


_KEY_COLUMNS = (
    "account_id, idem_key, request_hash, claim_id, state, task_id, response_status,"
    " response_body, created_at, expires_at"
)


@frozen
class SqlIdempotency:
    db: Session

    async def claim(self, record: KeyRecord) -> KeyRecord | None:
        where = "account_id = :account_id AND idem_key = :idem_key"
        key = {"account_id": record.account_id, "idem_key": record.key}
        await self.db.execute(  # a key past its day is free again
            f"DELETE FROM idempotency_key WHERE {where} AND expires_at < :now",
            now=record.created_at,
            **key,
        )
        await self.db.execute(
            "INSERT INTO idempotency_key (account_id, idem_key, request_hash, claim_id, state,"
            " task_id, created_at, expires_at) VALUES (:account_id, :idem_key, :request_hash,"
            " :claim_id, :state, :task_id, :created_at, :expires_at)"
            + self.db.dialect.if_absent("account_id", "idem_key"),
            request_hash=record.request_hash,
            claim_id=record.claim_id,
            state=record.state,
            task_id=record.task_id,
            created_at=record.created_at,
            expires_at=record.expires_at,
            **key,
        )
        row = await self.db.one(f"SELECT {_KEY_COLUMNS} FROM idempotency_key WHERE {where}", **key)
        assert row is not None
        if row["claim_id"] == record.claim_id:
            return None  # ours
        ts = self.db.dialect.timestamp
        status = row["response_status"]
        return KeyRecord(
            account_id=int(row["account_id"]),
            key=row["idem_key"],
            request_hash=row["request_hash"],
            claim_id=row["claim_id"],
            state=KeyState(row["state"]),
            created_at=ts(row["created_at"]) or _UNKNOWN,
            expires_at=ts(row["expires_at"]) or _UNKNOWN,
            task_id=row["task_id"],
            response_status=None if status is None else int(status),
            response_body=row["response_body"],
        )

    async def complete(
        self, account_id: int, key: str, claim_id: str, status: int, body: str
    ) -> bool:
        matched = await self.db.execute(
            "UPDATE idempotency_key SET state = :done, response_status = :status,"
            " response_body = :body WHERE account_id = :account_id AND idem_key = :idem_key"
            " AND claim_id = :claim_id",
            done=KeyState.DONE,
            status=status,
            body=body,
            account_id=account_id,
            idem_key=key,
            claim_id=claim_id,
        )
        return matched == 1

    async def purge(self, now: datetime) -> int:
        return await self.db.execute("DELETE FROM idempotency_key WHERE expires_at < :now", now=now)


_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@frozen
class SqlLeases:
    db: Session

    async def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        if_absent = self.db.dialect.if_absent("name")
        await self.db.execute(
            f"INSERT INTO lease (name, holder, expires_at) VALUES (:name, '', :never){if_absent}",
            name=name,
            never=_NEVER,
        )
        matched = await self.db.execute(
            "UPDATE lease SET holder = :holder, expires_at = :until"
            " WHERE name = :name AND (holder = :holder OR expires_at < :now)",
            holder=holder,
            until=until,
            name=name,
            now=now,
        )
        return matched == 1

    async def holder(self, name: str, now: datetime) -> str | None:
        value = await self.db.scalar(
            "SELECT holder FROM lease WHERE name = :name AND expires_at >= :now",
            name=name,
            now=now,
        )
        return str(value) if value else None

    async def release(self, name: str, holder: str) -> None:
        await self.db.execute(
            "UPDATE lease SET holder = '', expires_at = :never WHERE name = :name"
            " AND holder = :holder",
            never=_NEVER,
            name=name,
            holder=holder,
        )


@frozen
class SqlStats:
    db: Session

    async def counts(self) -> Counts:
        row = await self.db.one(
            "SELECT"
            " (SELECT COUNT(*) FROM user_info WHERE deleted_at IS NULL) AS accounts,"
            " (SELECT COUNT(*) FROM task) AS tasks,"
            " (SELECT COUNT(*) FROM task WHERE status = :success) AS successful_tasks,"
            " (SELECT COUNT(*) FROM redemption_code) AS codes,"
            " (SELECT COUNT(redeemed_by) FROM redemption_code) AS used_codes,"
            " (SELECT COALESCE(SUM(token_total - token_use), 0) FROM user_info"
            "  WHERE deleted_at IS NULL) AS credits",
            success=TaskStatus.SUCCESS,
        )
        assert row is not None
        return Counts(
            accounts=int(row["accounts"]),
            tasks=int(row["tasks"]),
            successful_tasks=int(row["successful_tasks"]),
            codes=int(row["codes"]),
            used_codes=int(row["used_codes"]),
            credits=int(row["credits"]),
        )

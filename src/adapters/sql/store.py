"""The SQL store: units of work over a driver's connection pool."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType

from attrs import define, field

from .database import Connection, Database
from .migrations import apply_migrations, pending_migrations
from .repositories import (
    AccountKey,
    SqlAccounts,
    SqlCodes,
    SqlDiscordAccounts,
    SqlIdempotency,
    SqlLeases,
    SqlLedger,
    SqlQueue,
    SqlSettings,
    SqlStats,
    SqlTasks,
    SqlUploads,
    SqlWebhooks,
)
from .session import Session


@define
class SqlUnitOfWork:
    """One transaction on one pooled connection; rolled back unless committed."""

    _db: Database
    _readonly: bool
    _account_key: AccountKey = field(factory=AccountKey)
    _lease: AbstractAsyncContextManager[Connection] | None = field(init=False, default=None)
    _conn: Connection | None = field(init=False, default=None)
    _open: bool = field(init=False, default=False)
    accounts: SqlAccounts = field(init=False)
    ledger: SqlLedger = field(init=False)
    codes: SqlCodes = field(init=False)
    tasks: SqlTasks = field(init=False)
    queue: SqlQueue = field(init=False)
    discord_accounts: SqlDiscordAccounts = field(init=False)
    settings: SqlSettings = field(init=False)
    leases: SqlLeases = field(init=False)
    uploads: SqlUploads = field(init=False)
    webhooks: SqlWebhooks = field(init=False)
    idempotency: SqlIdempotency = field(init=False)
    stats: SqlStats = field(init=False)

    async def __aenter__(self) -> SqlUnitOfWork:
        self._lease = self._db.connection()
        conn = await self._lease.__aenter__()
        try:
            await conn.begin(readonly=self._readonly)
        except BaseException as exc:
            await self._lease.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._conn, self._open = conn, True
        session = Session(conn, self._db.dialect)
        self.accounts = SqlAccounts(session)
        self.ledger = SqlLedger(session)
        self.codes = SqlCodes(session)
        self.tasks = SqlTasks(session)
        self.queue = SqlQueue(session)
        self.discord_accounts = SqlDiscordAccounts(session, self._account_key)
        self.settings = SqlSettings(session)
        self.leases = SqlLeases(session)
        self.uploads = SqlUploads(session)
        self.webhooks = SqlWebhooks(session)
        self.idempotency = SqlIdempotency(session)
        self.stats = SqlStats(session)
        return self

    async def commit(self) -> None:
        if self._readonly:
            raise RuntimeError("a read-only unit of work cannot commit")
        assert self._conn is not None and self._open
        await self._conn.commit()
        self._open = False

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._lease is not None and self._conn is not None
        try:
            if self._open:
                self._open = False
                try:
                    await self._conn.rollback()
                except Exception:
                    if exc is None:
                        raise
                    # the transaction died with the error already propagating (e.g. a
                    # query cancelled mid-flight): that one is reported, and the pool
                    # discards the broken connection
        finally:
            await self._lease.__aexit__(exc_type, exc, tb)


@define
class SqlStore:
    """A :class:`mjcore.ports.Store` over any of the SQL drivers."""

    db: Database
    account_key: str | None = field(default=None, repr=False)  # seals Discord tokens
    _key: AccountKey = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._key = AccountKey(self.account_key)

    def unit_of_work(self, *, readonly: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.db, readonly, self._key)

    async def ping(self) -> None:
        async with self.db.connection() as conn:
            await conn.fetch_all("SELECT 1 AS ok")

    async def migrate(self) -> Sequence[int]:
        return await apply_migrations(self.db)

    async def pending_migrations(self) -> Sequence[int]:
        return await pending_migrations(self.db)

    async def close(self) -> None:
        await self.db.close()

"""SQLite through the standard library's ``sqlite3``, called on the event loop.

A statement on a local database in WAL mode takes microseconds, less than handing it
to a worker thread and back (which is what an async wrapper such as aiosqlite does for
every statement; measured in ``docs/benchmarks.md``). So statements run inline and a
write transaction completes within one step of the event loop.

Only ``BEGIN IMMEDIATE`` can meet a lock, held by another process: it does not wait
inside SQLite (that would block the loop) but retries with ``asyncio.sleep`` backoff
for up to 30 s. Our own writers take turns on an in-process lock first. Reads run
beside the writer (WAL) without an explicit transaction.

The one slow thing SQLite does on commit, copying the WAL back into the database and
syncing it (a checkpoint), runs in a worker thread every ``CHECKPOINT_EVERY_S``; the
automatic checkpoint on commit only remains as a backstop for a thread that fell behind.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from attrs import define, field

from .database import DuplicateKey, Row
from .dialect import SQLITE, Dialect

BUSY_TIMEOUT_S = 30.0
CHECKPOINT_EVERY_S = 0.5
BACKSTOP_PAGES = 20_000  # about 80 MB of WAL before a commit would checkpoint on the loop
_BACKOFF_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


class DatabaseBusy(sqlite3.OperationalError):
    """Another process held the write lock for longer than the busy timeout."""


def _duplicate(exc: sqlite3.IntegrityError) -> bool:
    return "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc)


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


@define
class SqliteConnection:
    raw: sqlite3.Connection
    writer_lock: asyncio.Lock
    _holds_lock: bool = field(init=False, default=False)

    async def begin(self, *, readonly: bool) -> None:
        if readonly:
            return  # autocommit reads: each statement sees what is committed
        await self.writer_lock.acquire()
        self._holds_lock = True
        try:
            await self._begin_immediate()
        except BaseException:
            self._release()
            raise

    async def _begin_immediate(self) -> None:
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        for attempt in range(1_000_000):
            try:
                self.raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise DatabaseBusy(f"database is locked: {exc}") from exc
            await asyncio.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])

    def _release(self) -> None:
        if self._holds_lock:
            self._holds_lock = False
            self.writer_lock.release()

    async def commit(self) -> None:
        try:
            self.raw.execute("COMMIT")
        finally:
            self._release()

    async def rollback(self) -> None:
        try:
            if self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
        finally:
            self._release()

    def _run(self, sql: str, params: Sequence[object]) -> sqlite3.Cursor:
        try:
            return self.raw.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            if _duplicate(exc):
                raise DuplicateKey(str(exc)) from exc
            raise

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._run(sql, params).rowcount

    async def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        new_id = self._run(sql, params).lastrowid
        assert new_id is not None
        return new_id

    async def fetch_all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return [dict(row) for row in self._run(sql, params).fetchall()]


@define
class SqliteDatabase:
    """A few connections to one database file; one writer at a time."""

    path: str
    size: int = 3
    dialect: Dialect = SQLITE
    _writer_lock: asyncio.Lock = field(init=False, factory=asyncio.Lock)
    _idle: list[sqlite3.Connection] = field(init=False, factory=list)
    _free: asyncio.Semaphore = field(init=False)
    _all: list[sqlite3.Connection] = field(init=False, factory=list)
    _checkpointer: asyncio.Task[None] | None = field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._free = asyncio.Semaphore(self.size)

    async def _checkpoint_forever(self) -> None:
        # its own connection, used only from the worker thread it runs on
        raw = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        running: asyncio.Future[sqlite3.Cursor] | None = None
        try:
            while True:
                await asyncio.sleep(CHECKPOINT_EVERY_S)
                running = asyncio.ensure_future(
                    asyncio.to_thread(raw.execute, "PRAGMA wal_checkpoint(PASSIVE)")
                )
                await asyncio.shield(running)
        finally:
            # cancelling does not stop the thread: closing under it would crash the process
            if running is not None and not running.done():
                with suppress(Exception):
                    await running
            raw.close()

    def _open(self) -> sqlite3.Connection:
        # the connection is only used from the event loop's thread; isolation_level=None:
        # we say BEGIN and COMMIT ourselves
        raw = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        raw.row_factory = sqlite3.Row
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            raw.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:  # another process is switching it right now
            if not _locked(exc):
                raise
        raw.execute("PRAGMA synchronous = NORMAL")
        raw.execute("PRAGMA foreign_keys = ON")
        raw.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        self._all.append(raw)
        if self._checkpointer is None:
            self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoint_forever())
        return raw

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SqliteConnection]:
        async with self._free:
            raw = self._idle.pop() if self._idle else self._open()
            conn = SqliteConnection(raw, self._writer_lock)
            try:
                yield conn
            finally:
                if raw.in_transaction:  # a unit of work that could not finish its own
                    raw.execute("ROLLBACK")
                conn._release()
                self._idle.append(raw)

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        for raw in self._all:
            raw.close()
        self._all.clear()
        self._idle.clear()


def path_from_url(url: str) -> str:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` → a file path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError("expected sqlite:///path/to/file.db")
    return url[len(prefix) :]


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only: it holds password hashes and
    the JWT secret. SQLite gives its -wal and -shm files the same permissions."""
    with suppress(FileExistsError):  # an existing one keeps what its operator gave it
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


async def open_sqlite(url: str, pool_size: int) -> SqliteDatabase:
    path = path_from_url(url)
    parent = Path(path).parent
    if not parent.is_dir():
        raise ValueError(f"directory {parent} does not exist")
    _create_private(path)
    return SqliteDatabase(path, max(1, min(pool_size, 3)))

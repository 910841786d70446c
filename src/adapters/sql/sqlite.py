"""SQLite through aiosqlite: WAL, a real busy timeout, writers take the lock up front."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
from attrs import define, field

from .database import DuplicateKey, Row
from .dialect import SQLITE, Dialect

BUSY_TIMEOUT_S = 30.0


@define
class SqliteConnection:
    raw: aiosqlite.Connection

    async def begin(self, *, readonly: bool) -> None:
        # IMMEDIATE: a writer waits for the lock at BEGIN (honouring busy_timeout) instead
        # of failing with SQLITE_BUSY when a read transaction tries to upgrade.
        await self.raw.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")

    async def commit(self) -> None:
        await self.raw.execute("COMMIT")

    async def rollback(self) -> None:
        if self.raw.in_transaction:
            await self.raw.execute("ROLLBACK")

    async def _run(self, sql: str, params: Sequence[object]) -> aiosqlite.Cursor:
        try:
            return await self.raw.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise DuplicateKey(str(exc)) from exc
            raise

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        cursor = await self._run(sql, params)
        await cursor.close()
        return cursor.rowcount

    async def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        cursor = await self._run(sql, params)
        await cursor.close()
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def fetch_all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        async with self.raw.execute(sql, params) as cursor:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


@define
class SqliteDatabase:
    """A small pool of aiosqlite connections to one database file."""

    path: str
    size: int = 5
    dialect: Dialect = SQLITE
    _idle: asyncio.Queue[aiosqlite.Connection] = field(init=False, factory=asyncio.Queue)
    _opened: int = field(init=False, default=0)
    _all: list[aiosqlite.Connection] = field(init=False, factory=list)

    async def _open(self) -> aiosqlite.Connection:
        raw = await aiosqlite.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        await raw.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        await raw.execute("PRAGMA journal_mode = WAL")
        await raw.execute("PRAGMA synchronous = NORMAL")
        await raw.execute("PRAGMA foreign_keys = ON")
        self._all.append(raw)
        return raw

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SqliteConnection]:
        if self._idle.empty() and self._opened < self.size:
            self._opened += 1
            try:
                raw = await self._open()
            except BaseException:
                self._opened -= 1
                raise
        else:
            raw = await self._idle.get()
        try:
            yield SqliteConnection(raw)
        finally:
            self._idle.put_nowait(raw)

    async def close(self) -> None:
        for raw in self._all:
            await raw.close()
        self._all.clear()
        self._opened = 0


def path_from_url(url: str) -> str:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` → a file path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError("expected sqlite:///path/to/file.db")
    return url[len(prefix) :]


async def open_sqlite(url: str, pool_size: int) -> SqliteDatabase:
    path = path_from_url(url)
    parent = Path(path).parent
    if not parent.is_dir():
        raise ValueError(f"directory {parent} does not exist")
    return SqliteDatabase(path, pool_size)

"""MySQL / MariaDB through aiomysql."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomysql
import pymysql
from attrs import define, field
from pymysql.constants import CLIENT

from .database import DuplicateKey, Row
from .dialect import MYSQL, Dialect

_DUPLICATE_ENTRY = 1062


@define
class MysqlConnection:
    raw: Any  # aiomysql.Connection

    async def begin(self, *, readonly: bool) -> None:
        if not readonly:  # reads need none: READ COMMITTED gives each statement fresh data
            await self.raw.query("START TRANSACTION")

    async def commit(self) -> None:
        await self.raw.commit()

    async def rollback(self) -> None:
        await self.raw.rollback()

    async def _run(self, sql: str, params: Sequence[object]) -> tuple[int, int, list[Row]]:
        async with self.raw.cursor(aiomysql.DictCursor) as cursor:
            try:
                matched = await cursor.execute(sql, tuple(params) if params else None)
            except pymysql.err.IntegrityError as exc:
                if exc.args and exc.args[0] == _DUPLICATE_ENTRY:
                    raise DuplicateKey(str(exc)) from exc
                raise
            rows = list(await cursor.fetchall()) if cursor.description else []
            return int(matched), int(cursor.lastrowid or 0), rows

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        matched, _, _ = await self._run(sql, params)
        return matched

    async def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        _, new_id, _ = await self._run(sql, params)
        return new_id

    async def fetch_all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        _, _, rows = await self._run(sql, params)
        return rows


@define
class MysqlDatabase:
    pool: Any  # aiomysql.Pool
    dialect: Dialect = MYSQL
    _prepared: weakref.WeakSet[Any] = field(factory=weakref.WeakSet)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[MysqlConnection]:
        async with self.pool.acquire() as raw:
            if raw not in self._prepared:
                # as on PostgreSQL, each statement sees what others committed before it
                # (InnoDB's default snapshot would be taken at the first plain read)
                await raw.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                self._prepared.add(raw)
            yield MysqlConnection(raw)

    async def close(self) -> None:
        self.pool.close()
        await self.pool.wait_closed()


async def open_mysql(url: str, pool_size: int) -> MysqlDatabase:
    """``mysql://user:pass@host:port/db`` → a pool. Rows counted as matched, not changed."""
    parts = urlsplit(url)
    database = parts.path.lstrip("/")
    if not database:
        raise ValueError("expected mysql://user:password@host:port/database")
    pool = await aiomysql.create_pool(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        db=database,
        minsize=1,
        maxsize=pool_size,
        autocommit=False,
        charset="utf8mb4",
        client_flag=CLIENT.FOUND_ROWS,
        init_command="SET time_zone = '+00:00', sql_notes = 0",  # notes are not warnings
    )
    return MysqlDatabase(pool)

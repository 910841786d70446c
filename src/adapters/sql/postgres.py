"""PostgreSQL through asyncpg."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from attrs import define, field

from .database import DuplicateKey, Row
from .dialect import POSTGRES, Dialect


@define
class PostgresConnection:
    raw: Any  # asyncpg.Connection
    _tx: Any = field(default=None)

    async def begin(self, *, readonly: bool) -> None:
        if readonly:
            self._tx = None  # autocommit reads: one round trip per statement
            return
        self._tx = self.raw.transaction()
        await self._tx.start()

    async def commit(self) -> None:
        await self._tx.commit()

    async def rollback(self) -> None:
        if self._tx is not None:
            await self._tx.rollback()

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        try:
            status: str = await self.raw.execute(sql, *params)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateKey(str(exc)) from exc
        # "UPDATE 3", "INSERT 0 1", "SELECT 1", "CREATE TABLE"...
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        try:
            return int(await self.raw.fetchval(f"{sql} RETURNING id", *params))
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateKey(str(exc)) from exc

    async def fetch_all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return [dict(record) for record in await self.raw.fetch(sql, *params)]


@define
class PostgresDatabase:
    pool: Any  # asyncpg.Pool
    dialect: Dialect = POSTGRES

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PostgresConnection]:
        async with self.pool.acquire() as raw:
            yield PostgresConnection(raw)

    async def close(self) -> None:
        await self.pool.close()


async def open_postgres(url: str, pool_size: int) -> PostgresDatabase:
    """``postgresql://user:pass@host:port/db`` → a pool."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size)
    return PostgresDatabase(pool)

"""A connection plus its dialect: run ``:name``-style SQL and get plain rows back."""

from __future__ import annotations

from typing import Any

from attrs import frozen

from .database import Connection, Row
from .dialect import Dialect


@frozen
class Session:
    conn: Connection
    dialect: Dialect

    async def execute(self, sql: str, **params: Any) -> int:
        return await self.conn.execute(*self.dialect.bind(sql, params))

    async def insert(self, sql: str, **params: Any) -> int:
        return await self.conn.insert(*self.dialect.bind(sql, params))

    async def all(self, sql: str, **params: Any) -> list[Row]:
        return await self.conn.fetch_all(*self.dialect.bind(sql, params))

    async def one(self, sql: str, **params: Any) -> Row | None:
        rows = await self.all(sql, **params)
        return rows[0] if rows else None

    async def scalar(self, sql: str, **params: Any) -> Any:
        row = await self.one(sql, **params)
        return None if row is None else next(iter(row.values()))

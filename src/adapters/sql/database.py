"""The driver port inside the SQL adapter: what each backend driver must offer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from .dialect import Dialect

Row = Mapping[str, Any]


class DuplicateKey(Exception):
    """A unique constraint refused the write (driver errors are mapped to this)."""


class Connection(Protocol):
    """One pooled connection. SQL is already in the driver's placeholder style."""

    async def begin(self, *, readonly: bool) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run a statement; return the number of rows it matched."""

    async def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run an INSERT into a table with an ``id`` column; return the new id."""

    async def fetch_all(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...


class Database(Protocol):
    """A pool of connections to one database."""

    dialect: Dialect

    def connection(self) -> AbstractAsyncContextManager[Connection]: ...

    async def close(self) -> None: ...

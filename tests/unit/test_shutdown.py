"""Stopping: a background loop or a transaction cancelled mid-query stops, whatever the
driver raises on the way out (a swallowed cancellation hangs the server's shutdown)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from adapters.sql.dialect import SQLITE
from adapters.sql.store import SqlUnitOfWork
from entrypoints.app import _every


async def test_a_loop_cancelled_while_its_work_fails_stops() -> None:
    started = asyncio.Event()

    async def work() -> bool:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("Cancelled during execution") from None  # as aiomysql does
        return False

    loop = asyncio.create_task(_every(0.01, work, "the test loop"))
    await started.wait()
    loop.cancel()

    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await loop


class _DyingConnection:
    """A connection whose query is cancelled and whose rollback then fails."""

    async def begin(self, *, readonly: bool) -> None:
        pass

    async def fetch_all(self, *args: Any) -> list[Any]:
        await asyncio.sleep(60)
        return []

    async def rollback(self) -> None:
        raise RuntimeError("Cancelled during execution")


class _Database:
    dialect = SQLITE

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[_DyingConnection]:
        yield _DyingConnection()


async def test_a_transaction_cancelled_mid_query_reports_the_cancellation() -> None:
    async def query() -> None:
        async with SqlUnitOfWork(_Database(), False) as uow:  # type: ignore[arg-type]
            await uow._conn.fetch_all("SELECT 1")  # type: ignore[union-attr]

    running = asyncio.create_task(query())
    await asyncio.sleep(0.01)
    running.cancel()

    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_failed_rollback_with_nothing_else_wrong_is_raised() -> None:
    with pytest.raises(RuntimeError, match="Cancelled during execution"):
        async with SqlUnitOfWork(_Database(), False):  # type: ignore[arg-type]
            pass  # no commit: rolled back, and the rollback fails

"""Helpers shared by the tests: a fake clock, store factories and a back door per store."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from attrs import evolve

from adapters.memory import MemoryStore
from adapters.sql import SqlStore
from entrypoints import logs
from entrypoints.bootstrap import open_store
from mjcore.ports import Store

MYSQL_URL = os.environ.get("MJCORE_TEST_MYSQL_URL")
POSTGRES_URL = os.environ.get("MJCORE_TEST_POSTGRES_URL")
ALL_STORES = ("memory", "sqlite", "mysql", "postgres")
# every table the migrations create, children first
TABLES = (
    "task",
    "ledger_entry",
    "redemption_code",
    "mjcore_setting",
    "lease",
    "upload",
    "webhook_delivery",
    "idempotency_key",
    "discord_account",
    "user_info",
)
# tables whose rows are part of the schema (seeded by migrations), never emptied
SEEDED_TABLES = ("provider_queue",)


MIDJOURNEY_WORDS = (
    "Peter Pan flying over London",
    "Image #1 of a series",
    "Zoom Out of a city",
    "Variations of a theme",
    "Upscaled lighthouse",
    "a kettle (Stopped)",
    "a progress bar (50%)",
    "a **bold** fox",
)
"""Prompts in Midjourney's own words: none of them may be read as Midjourney's wording."""


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def selected_stores() -> list[str]:
    """``MJCORE_TEST_STORES=memory,sqlite`` narrows the run (the tox envs use it)."""
    wanted = os.environ.get("MJCORE_TEST_STORES")
    return [s.strip() for s in wanted.split(",")] if wanted else list(ALL_STORES)


def store_params() -> list[object]:
    params: list[object] = []
    for name in selected_stores():
        marks = []
        if name == "mysql" and not MYSQL_URL:
            marks.append(pytest.mark.skip(reason="MJCORE_TEST_MYSQL_URL is not set (CI sets it)"))
        if name == "postgres" and not POSTGRES_URL:
            marks.append(
                pytest.mark.skip(reason="MJCORE_TEST_POSTGRES_URL is not set (CI sets it)")
            )
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def url_for(name: str, tmp_path: Path) -> str:
    return {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path / 'mjcore.db'}",
        "mysql": MYSQL_URL or "",
        "postgres": POSTGRES_URL or "",
    }[name]


async def drop_all(store: SqlStore) -> None:
    async with store.db.connection() as conn:
        await conn.begin(readonly=False)
        for table in (*TABLES, *SEEDED_TABLES, "schema_version"):
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.commit()


async def empty_tables(store: SqlStore) -> None:
    async with store.db.connection() as conn:
        await conn.begin(readonly=False)
        for table in TABLES:
            await conn.execute(f"DELETE FROM {table}")
        await conn.execute("UPDATE provider_queue SET running = 0, waiting = 0")  # no tasks left
        await conn.commit()


_migrated: set[str] = set()


@asynccontextmanager
async def open_test_store(name: str, tmp_path: Path, pool_size: int = 10) -> AsyncIterator[Store]:
    """A migrated, empty store of the named kind; the server ones are shared, so emptied."""
    store = await open_store(url_for(name, tmp_path), pool_size)
    try:
        if isinstance(store, SqlStore) and name not in ("sqlite",):
            if name not in _migrated:  # first use in this run: start from an empty schema
                await drop_all(store)
                _migrated.add(name)
            await store.migrate()
            await empty_tables(store)
        else:
            await store.migrate()
        yield store
    finally:
        await store.close()


async def tamper_total(store: Store, account_id: int, delta: int) -> None:
    """Change a counter behind the ledger's back, as a stray manual UPDATE would."""
    if isinstance(store, MemoryStore):
        state = store._state
        account = state.accounts[account_id]
        state.accounts[account_id] = evolve(account, token_total=account.token_total + delta)
        return
    assert isinstance(store, SqlStore)
    async with store.db.connection() as conn:
        await conn.begin(readonly=False)
        text, params = store.db.dialect.bind(
            "UPDATE user_info SET token_total = token_total + :delta WHERE id = :id",
            {"delta": delta, "id": account_id},
        )
        await conn.execute(text, params)
        await conn.commit()


def rendered(records: Iterable[logging.LogRecord], fmt: str = "json") -> str:
    """Log records as the server prints them (every field, not only the message)."""
    formatter = logs.formatter(fmt)
    return "\n".join(formatter.format(record) for record in records)

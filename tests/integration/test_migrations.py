"""Migrations: numbered per dialect, recorded, idempotent, safe when processes race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiomysql
import asyncpg
import pytest

from adapters.sql import SqlStore
from adapters.sql.dialect import MYSQL, POSTGRES, SQLITE
from adapters.sql.migrations import load
from entrypoints.bootstrap import open_store
from mjcore.ports import Store

from ..support import MYSQL_URL, POSTGRES_URL, store_params

SEED_COLUMNS = {
    "id",
    "user_name",
    "app_key",
    "token_total",
    "token_use",
    "created_at",
    "updated_at",
}
# named after the test database, so runs against different databases never collide
FRESH_DB = "mjcore_migration_" + urlsplit(MYSQL_URL or POSTGRES_URL or "/test").path.strip("/")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _recreate_mysql() -> str:
    assert MYSQL_URL
    parts = urlsplit(MYSQL_URL)
    conn = await aiomysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
        init_command="SET sql_notes = 0",
    )
    async with conn.cursor() as cur:
        await cur.execute(f"DROP DATABASE IF EXISTS {FRESH_DB}")
        await cur.execute(f"CREATE DATABASE {FRESH_DB}")
    await conn.ensure_closed()
    return _with_database(MYSQL_URL, FRESH_DB)


async def _recreate_postgres() -> str:
    assert POSTGRES_URL
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {FRESH_DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {FRESH_DB}")
    finally:
        await conn.close()
    return _with_database(POSTGRES_URL, FRESH_DB)


@pytest.fixture(params=[p for p in store_params() if p.id != "memory"])  # type: ignore[attr-defined]
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of each SQL kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    elif request.param == "mysql":
        yield await _recreate_mysql()
    else:
        yield await _recreate_postgres()


def test_every_dialect_ships_the_same_numbered_migrations() -> None:
    versions = {d.name: [m.version for m in load(d)] for d in (SQLITE, MYSQL, POSTGRES)}
    assert versions["sqlite"] == versions["mysql"] == versions["postgres"]
    assert versions["sqlite"] == list(range(1, len(versions["sqlite"]) + 1))


def test_each_migration_splits_into_whole_statements() -> None:
    for dialect in (SQLITE, MYSQL, POSTGRES):
        for migration in load(dialect):
            for statement in migration.statements:
                code = "\n".join(
                    line for line in statement.splitlines() if not line.strip().startswith("--")
                )
                assert ";" not in code, (dialect.name, migration.version, statement)
                assert code.split()[0].upper() in ("CREATE", "ALTER", "INSERT"), statement


async def _columns(store: SqlStore, table: str) -> set[str]:
    async with store.db.connection() as conn:
        if store.db.dialect is SQLITE:
            info = await conn.fetch_all(f"PRAGMA table_info({table})")
            return {row["name"] for row in info}
        info = await conn.fetch_all(
            "SELECT column_name AS name FROM information_schema.columns"
            f" WHERE table_name = '{table}' AND table_schema = "
            + ("DATABASE()" if store.db.dialect is MYSQL else "'public'")
        )
        return {str(row["name"]) for row in info}


async def test_migrate_creates_the_schema_and_records_each_version(fresh_url: str) -> None:
    store = await open_store(fresh_url)
    assert isinstance(store, SqlStore)
    try:
        applied = await store.migrate()
        again = await store.migrate()
        async with store.db.connection() as conn:
            recorded = await conn.fetch_all("SELECT version FROM schema_version ORDER BY version")
        columns = await _columns(store, "user_info")
    finally:
        await store.close()

    assert list(applied) == [m.version for m in load(store.db.dialect)]
    assert list(again) == []
    assert [int(r["version"]) for r in recorded] == list(applied)
    assert columns >= SEED_COLUMNS


async def test_racing_processes_migrate_once(fresh_url: str) -> None:
    stores = [await open_store(fresh_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
    finally:
        for s in stores:
            await s.close()

    applied = sorted(v for result in results for v in result)
    assert applied == sorted({v for result in results for v in result})  # nothing twice
    assert len([r for r in results if r]) == 1


async def test_pending_migrations_reads_without_creating_anything(fresh_url: str) -> None:
    store = await open_store(fresh_url)
    assert isinstance(store, SqlStore)
    shipped = [m.version for m in load(store.db.dialect)]
    try:
        before = list(await store.pending_migrations())
        twice = list(await store.pending_migrations())  # still nothing created to find
        await store.migrate()
        after = list(await store.pending_migrations())
        async with store.db.connection() as conn:
            await conn.begin(readonly=False)
            await conn.execute(f"DELETE FROM schema_version WHERE version = {shipped[-1]}")
            await conn.commit()
        behind = list(await store.pending_migrations())
    finally:
        await store.close()

    assert before == twice == shipped
    assert after == []
    assert behind == [shipped[-1]]


async def test_a_migrated_store_has_nothing_pending(store: Store) -> None:
    assert list(await store.pending_migrations()) == []

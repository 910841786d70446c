"""Numbered SQL migrations per dialect, applied in order and recorded in ``schema_version``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib import resources

from attrs import frozen

from ..database import Connection, Database
from ..dialect import Dialect
from ..session import Session

_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_STATEMENT_END = re.compile(r";[ \t]*(?:--[^\n]*)?$", re.MULTILINE)  # a ";" ends its line

VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER NOT NULL PRIMARY KEY,"
    " name VARCHAR(128) NOT NULL,"
    " applied_at VARCHAR(32) NOT NULL)"
)


@frozen
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def load(dialect: Dialect) -> list[Migration]:
    """The migrations shipped for ``dialect``, in version order."""
    found = []
    for entry in resources.files(__package__).joinpath(dialect.name).iterdir():
        match = _FILE.fullmatch(entry.name)
        if match is None:
            continue
        text = entry.read_text(encoding="utf-8")
        statements = tuple(s.strip() for s in _STATEMENT_END.split(text) if _sql(s))
        found.append(Migration(int(match.group(1)), match.group(2), statements))
    found.sort(key=lambda m: m.version)
    return found


def _sql(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


async def apply_migrations(db: Database) -> list[int]:
    """Apply what is missing, under a lock so that several processes can start at once."""
    dialect = db.dialect
    pending: list[int] = []
    async with db.connection() as conn:
        session = Session(conn, dialect)
        await conn.begin(readonly=False)
        try:
            if dialect.migration_lock:
                await session.execute(dialect.migration_lock)
            await session.execute(VERSION_TABLE)
            rows = await session.all("SELECT version FROM schema_version")
            applied = {int(row["version"]) for row in rows}
            for migration in load(dialect):
                if migration.version in applied:
                    continue
                await _apply(conn, session, migration)
                pending.append(migration.version)
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
        finally:
            if dialect.migration_unlock:
                await session.execute(dialect.migration_unlock)
    return pending


async def pending_migrations(db: Database) -> list[int]:
    """The shipped versions ``schema_version`` does not list yet; reads only."""
    shipped = [m.version for m in load(db.dialect)]
    async with db.connection() as conn:
        session = Session(conn, db.dialect)
        await conn.begin(readonly=True)
        try:
            if not await session.all(db.dialect.table_exists, name="schema_version"):
                return shipped
            rows = await session.all("SELECT version FROM schema_version")
        finally:
            await conn.rollback()
    applied = {int(row["version"]) for row in rows}
    return [version for version in shipped if version not in applied]


async def _apply(conn: Connection, session: Session, migration: Migration) -> None:
    for statement in migration.statements:
        await conn.execute(statement)
    await session.execute(
        "INSERT INTO schema_version (version, name, applied_at)"
        " VALUES (:version, :name, :applied_at)",
        version=migration.version,
        name=migration.name,
        applied_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )

"""What differs between SQLite, MySQL/MariaDB and PostgreSQL, in one small object."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache

from attrs import frozen

_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_AS_IS = frozenset({str, int, float, type(None)})


class Paramstyle(enum.Enum):
    QMARK = "?"
    FORMAT = "%s"
    NUMERIC = "$"


@frozen
class Dialect:
    """SQL spelling for one backend. Queries are written once with ``:name`` parameters."""

    name: str
    paramstyle: Paramstyle
    for_update: str  # appended to a locking SELECT
    skip_locked: str  # appended to a SELECT that claims rows others are not claiming
    on_conflict: str  # INSERT ... {on_conflict}: keep the existing row on a duplicate key
    table_exists: str  # a query with :name giving a row if that table exists
    migration_lock: str | None = None
    migration_unlock: str | None = None
    datetimes_as_text: bool = False

    def if_absent(self, *keys: str) -> str:
        """What makes an INSERT keep the row already holding these unique ``keys``."""
        return self.on_conflict.format(keys=", ".join(keys), first=keys[0])

    def compile(self, sql: str) -> tuple[str, tuple[str, ...]]:
        """``:name`` placeholders → this driver's placeholders, and the names in order."""
        return _compile(self.paramstyle, sql)

    def bind(self, sql: str, params: Mapping[str, object]) -> tuple[str, Sequence[object]]:
        text, names = self.compile(sql)
        convert = self.param
        values = [params[name] for name in names]
        # str, int and None (nearly every parameter) pass as they are
        return text, [v if type(v) in _AS_IS else convert(v) for v in values]

    def param(self, value: object) -> object:
        if type(value) in _AS_IS:
            return value
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, datetime):
            utc = value if value.tzinfo is UTC else value.astimezone(UTC)
            naive = utc.replace(tzinfo=None)
            return naive.isoformat(" ", "microseconds") if self.datetimes_as_text else naive
        return value

    def timestamp(self, value: object) -> datetime | None:
        """A stored time back as an aware UTC datetime."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"not a timestamp: {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=512)
def _compile(style: Paramstyle, sql: str) -> tuple[str, tuple[str, ...]]:
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        names.append(match.group(1))
        if style is Paramstyle.NUMERIC:
            return f"${len(names)}"
        return str(style.value)

    return _NAMED.sub(placeholder, sql), tuple(names)


SQLITE = Dialect(
    name="sqlite",
    paramstyle=Paramstyle.QMARK,
    for_update="",  # BEGIN IMMEDIATE already holds the write lock
    skip_locked="",  # ... so no other writer can be claiming
    on_conflict=" ON CONFLICT ({keys}) DO NOTHING",
    table_exists="SELECT name FROM sqlite_master WHERE type = 'table' AND name = :name",
    datetimes_as_text=True,
)

MYSQL = Dialect(
    name="mysql",
    paramstyle=Paramstyle.FORMAT,
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",  # MySQL 8, MariaDB 10.6+, PostgreSQL 9.5+
    on_conflict=" ON DUPLICATE KEY UPDATE {first} = {first}",  # INSERT IGNORE would warn
    table_exists="SELECT table_name FROM information_schema.tables"
    " WHERE table_schema = DATABASE() AND table_name = :name",
    migration_lock="SELECT GET_LOCK('mjcore_migrate', 120)",
    migration_unlock="SELECT RELEASE_LOCK('mjcore_migrate')",
)

POSTGRES = Dialect(
    name="postgres",
    paramstyle=Paramstyle.NUMERIC,
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",  # MySQL 8, MariaDB 10.6+, PostgreSQL 9.5+
    on_conflict=" ON CONFLICT ({keys}) DO NOTHING",
    table_exists="SELECT table_name FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_name = :name",
    migration_lock="SELECT pg_advisory_xact_lock(7316001)",
)

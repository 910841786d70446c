"""The SQL dialects: one query text, three placeholder styles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from adapters.sql.dialect import MYSQL, POSTGRES, SQLITE
from mjcore.tasks import TaskStatus

QUERY = "UPDATE t SET a = :a, b = :b WHERE id = :id AND a = :a"


def test_named_parameters_become_each_drivers_placeholders() -> None:
    assert SQLITE.compile(QUERY) == (
        "UPDATE t SET a = ?, b = ? WHERE id = ? AND a = ?",
        ("a", "b", "id", "a"),
    )
    assert MYSQL.compile(QUERY)[0] == "UPDATE t SET a = %s, b = %s WHERE id = %s AND a = %s"
    assert POSTGRES.compile(QUERY)[0] == "UPDATE t SET a = $1, b = $2 WHERE id = $3 AND a = $4"


def test_casts_and_times_in_literals_are_left_alone() -> None:
    text, names = POSTGRES.compile("SELECT x::text, '12:30' FROM t WHERE y = :y")
    assert (text, names) == ("SELECT x::text, '12:30' FROM t WHERE y = $1", ("y",))


def test_values_are_converted_for_the_driver() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=8)))
    _, params = SQLITE.bind(":t :s :b", {"t": moment, "s": TaskStatus.SUCCESS, "b": True})
    assert params == ["2026-01-01 19:04:05.000006", "SUCCESS", 1]
    _, params = POSTGRES.bind(":t", {"t": moment})
    assert params == [datetime(2026, 1, 1, 19, 4, 5, 6)]  # noqa: DTZ001 (drivers take naive UTC)


def test_stored_times_come_back_aware_in_utc() -> None:
    expected = datetime(2026, 1, 1, 19, 4, 5, 6, tzinfo=UTC)
    assert SQLITE.timestamp("2026-01-01 19:04:05.000006") == expected
    assert MYSQL.timestamp(datetime(2026, 1, 1, 19, 4, 5, 6)) == expected  # noqa: DTZ001
    assert POSTGRES.timestamp(None) is None

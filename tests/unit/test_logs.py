"""How log records are rendered, and which request ids are taken."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from entrypoints import logs
from entrypoints.settings import Settings
from mjcore import events
from mjcore.ledger import EntryKind, LedgerEntry


def _record(
    event: str = "task.moved", exc_info: object = None, **fields: object
) -> logging.LogRecord:
    info: Any = exc_info
    record = logging.LogRecord("mjcore.tasks", logging.INFO, "x.py", 1, event, (), info)
    record.__dict__.update(fields)
    return record


@pytest.mark.parametrize(
    ("given", "taken"),
    [
        ("abc-123", True),
        ("a" * 128, True),
        ("spaces are printable", True),
        ("a" * 129, False),
        ("", False),
        ("   ", False),
        ("line\nbreak", False),
        ("\x1b[31mred", False),
        ("caf\u00e9", False),
        (None, False),
    ],
)
def test_a_request_id_is_taken_only_when_printable_ascii_of_at_most_128(
    given: str | None, taken: bool
) -> None:
    rid = logs.request_id(given)
    assert (rid == given) is taken
    if not taken:
        assert len(rid) == 32 and int(rid, 16) >= 0


def test_json_lines_carry_the_fields_the_level_the_logger_and_the_bound_request_id() -> None:
    with structlog.contextvars.bound_contextvars(request_id="r-1"):
        line = logs.formatter("json").format(_record(task_id="t1", to="SUCCESS"))
    parsed = json.loads(line)

    assert parsed | {"timestamp": "t", "pid": 0} == {
        "event": "task.moved",
        "request_id": "r-1",
        "level": "info",
        "logger": "mjcore.tasks",
        "task_id": "t1",
        "to": "SUCCESS",
        "timestamp": "t",
        "pid": 0,
    }


def test_text_lines_escape_what_could_forge_a_line_or_a_colour() -> None:
    line = logs.formatter("console").format(_record(detail="ok\nFAKE LINE \x1b[31m 100%"))
    assert line.isprintable() and "ok%0AFAKE LINE %1B[31m 100%25" in line


def test_tracebacks_are_plain_and_never_show_local_variables() -> None:
    secret = "a-password-in-a-local-variable"
    try:
        password = secret
        raise ValueError(f"bad length {len(password)}")
    except ValueError:
        record = _record("http.unexpected_error", exc_info=sys.exc_info())
    for fmt in ("json", "console"):
        line = logs.formatter(fmt).format(record)
        assert "ValueError: bad length 30" in line and secret not in line


def test_auto_is_json_unless_stderr_is_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert logs.resolve("auto") == "json"  # pytest captures stderr: no terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert logs.resolve("auto") == "console"
    assert logs.resolve("json") == "json"


def test_the_level_filters_what_is_printed_not_what_the_metrics_count() -> None:
    config = logs.logging_config(Settings(log_level="WARNING", log_format="json"))
    assert config["handlers"]["stderr"]["level"] == "WARNING"
    assert config["loggers"]["mjcore"]["level"] == "DEBUG"
    assert config["loggers"]["mjcore.access"]["level"] == "WARNING"  # HTTP is counted directly
    assert config["loggers"]["httpx"]["level"] == "WARNING"  # full URLs, signatures too


def test_a_redemption_code_in_a_ledger_reference_is_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:

    caplog.set_level(logging.INFO, logger="mjcore.ledger")
    entry = LedgerEntry(7, 3, EntryKind.GRANT, "code:ABCDEFGHJKLMNPQR", datetime.now(UTC))
    events.ledger_entry(entry)
    [record] = caplog.records
    assert record.getMessage() == "ledger.grant"
    assert record.__dict__["reference"] == "code:***" and record.__dict__["delta"] == 3

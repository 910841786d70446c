"""Log lines: every process's standard-library records rendered by structlog, with the
request's id.

Code logs through :mod:`logging` everywhere (the core may use nothing else): the message
is the event's name and the fields are in ``extra`` (see :mod:`mjcore.events`). Here
structlog's ``ProcessorFormatter`` renders each record, ours, uvicorn's and the
libraries' alike, as one JSON object or as ``key=value`` text, and adds the fields bound
to the current request (its ``request_id``) through context variables.
"""

from __future__ import annotations

import logging
import logging.config
import os
import secrets
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from .settings import Settings

FORMATS = ("auto", "json", "console")
REQUEST_ID_MAX = 128


def resolve(log_format: str) -> str:
    """``json`` or ``console``: ``auto`` is key=value text on a terminal, JSON otherwise."""
    if log_format == "auto":
        return "console" if sys.stderr.isatty() else "json"
    return log_format


def printable(text: str) -> str:
    """``text`` safe for a log line: control and other unprintable characters (CR, LF, ESC,
    U+2028…) and ``%`` itself percent-encoded, so a value cannot forge lines or colours."""
    if text.isprintable() and "%" not in text:
        return text
    return "".join(
        c
        if c.isprintable() and c != "%"
        else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in text
    )


def request_id(given: str | None) -> str:
    """The request's id: the client's ``X-Request-ID`` when it is 1–128 printable ASCII
    characters, else a fresh one (32 hex digits)."""
    if (
        given
        and given.strip()
        and len(given) <= REQUEST_ID_MAX
        and all(" " <= c <= "~" for c in given)
    ):
        return given
    return secrets.token_hex(16)


def _drop_copies(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """What is not a field: uvicorn's copy of its message with ANSI colours, and the
    attributes another formatter may have left on the record."""
    for key in ("color_message", "message", "asctime"):
        event.pop(key, None)
    return event


def _escaped(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Text lines print values as they are: escape what could forge a line or a colour
    (JSON escapes them itself)."""
    for key, value in event.items():
        if isinstance(value, str) and key != "exception":
            event[key] = printable(value)
    return event


def _pid(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event["pid"] = os.getpid()  # which worker (``serve --workers N``)
    return event


SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    _drop_copies,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def formatter(fmt: str = "auto") -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every handler: ``json``, ``console`` or ``auto`` (see :func:`resolve`).

    Tracebacks are plain text, never with local variables (they may hold a key or a
    password).
    """
    tail: list[Processor]
    if resolve(fmt) == "json":
        tail = [_pid, structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        tail = [
            _escaped,
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )


def logging_config(settings: Settings) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a mjcore process; uvicorn applies it in each
    worker (its ``log_config``), so every process logs the same way.

    ``LOG_LEVEL`` is the handler's level; the ``mjcore`` loggers pass DEBUG records on
    regardless, so that the metrics, which count events of every level, see them all.
    """
    level = settings.log_level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mjcore": {"()": f"{__name__}.formatter", "fmt": settings.log_format}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "mjcore",
                "level": level,
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own handlers would print its lines in its own format: through ours
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False},  # ours is mjcore.access
            "mjcore": {"level": "DEBUG"},
            "mjcore.access": {"level": level},  # not counted from the log: skip what is not printed
            # every request's full URL at INFO (a pre-signed upload URL's signature too);
            # our provider.call events say what matters without the query string
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Log as :func:`logging_config` says, in this process."""
    logging.config.dictConfig(logging_config(settings))

"""Time as a port: use cases ask a clock, tests hand them a fake one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware in UTC."""


def system_clock() -> datetime:
    """The real clock (UTC, microsecond precision)."""
    return datetime.now(UTC)

"""Findings of the security review (issue #9), in process: each test names its finding."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ..inprocess import in_process


async def test_finding_15_access_log_escapes_control_characters_in_the_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mjcore.access")
    async with in_process({}, tmp_path) as app:
        await app.client.get("/images/x%0d%0aGET /forged 200%1b[31m%e2%80%a8end")

    [line] = [r.getMessage() for r in caplog.records if r.name == "mjcore.access"]
    assert line.isprintable(), repr(line)  # no CR, LF, ESC, U+2028: one line, no colours
    assert "/images/x%0D%0AGET /forged 200%1B[31m%E2%80%A8end" in line
    assert line.endswith("ms") and " 404 " in line

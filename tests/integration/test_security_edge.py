"""Findings of the security review (issue #9), in process: each test names its finding."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.images import LocalImageStore

from ..e2e import new_user
from ..fakes.images import png
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


MiB = 1024 * 1024


def _chunks(total: int, pulled: list[int], size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """``total`` bytes of JSON-ish filler; ``pulled`` counts what the server actually read."""

    async def gen() -> AsyncIterator[bytes]:
        sent = 0
        while sent < total:
            chunk = b" " * min(size, total - sent)
            sent += len(chunk)
            pulled.append(len(chunk))
            yield chunk

    return gen()


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
async def test_finding_3_json_bodies_over_the_cap_are_413_in_each_surfaces_shape(
    tmp_path: Path, declared: bool
) -> None:
    async with in_process({"MJCORE_MAX_BODY_BYTES": str(MiB)}, tmp_path) as app:
        user = await new_user(app.database_url)
        answers = {}
        for path in ("/api/login", "/v1/api/trigger/imagine"):
            pulled: list[int] = []
            headers = user.headers | ({"Content-Length": str(50 * MiB)} if declared else {})
            answers[path] = await app.client.post(
                path, content=_chunks(50 * MiB, pulled), headers=headers
            )
            # chunked: reading stops at the cap; declared: not a byte of the body is read
            assert sum(pulled) <= (0 if declared else MiB + 64 * 1024) + 64 * 1024

    login, imagine = answers["/api/login"], answers["/v1/api/trigger/imagine"]
    assert login.status_code == 413 and set(login.json()) == {"error"}
    assert "1048576" in login.json()["error"]
    assert imagine.status_code == 413 and imagine.json()["code"] == 13
    assert set(imagine.json()) == {"detail", "code"}


async def test_finding_3_a_body_at_the_cap_is_still_read(tmp_path: Path) -> None:
    async with in_process({"MJCORE_MAX_BODY_BYTES": "2048"}, tmp_path) as app:
        padded = '{"username": "nobody", "password": "%s"}' % ("x" * 900)
        at_cap = padded + " " * (2048 - len(padded))
        over = at_cap + " "
        fits = await app.client.post("/api/login", content=at_cap)
        too_big = await app.client.post("/api/login", content=over)

    assert fits.status_code == 401  # parsed, and the login failed
    assert too_big.status_code == 413


async def test_finding_10_images_are_streamed_from_their_file_with_nosniff_and_immutable_cache(
    tmp_path: Path,
) -> None:
    async with in_process({}, tmp_path) as app:
        images = LocalImageStore(Path(app.settings.image_dir), app.settings.public_url)
        name = (await images.save(png(), "image/png")).rsplit("/", 1)[-1]
        stored = await images.load(name)
        served = await app.client.get(f"/images/{name}")
        missing = await app.client.get(f"/images/{'A' * 32}.png")
        sneaky = await app.client.get("/images/..%2fmjcore.db")

    assert stored is not None and stored.path == tmp_path / "images" / name
    assert served.status_code == 200 and served.content == png()
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["content-length"] == str(len(png()))
    assert missing.status_code == 404 and sneaky.status_code == 404

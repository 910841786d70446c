"""Findings of the security review (issue #9), in process: each test names its finding."""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from adapters.images import LocalImageStore
from entrypoints.ratelimit import RateLimitStorageUnavailable, open_rate_limits
from entrypoints.settings import Settings

from ..e2e import new_user
from ..fakes.images import png
from ..inprocess import BASE_URL, in_process
from ..support import rendered


async def test_finding_15_access_log_escapes_control_characters_in_the_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mjcore.access")
    async with in_process({}, tmp_path) as app:
        await app.client.get("/images/x%0d%0aGET /forged 200%1b[31m%e2%80%a8end")

    [record] = [r for r in caplog.records if r.name == "mjcore.access"]
    text, json_line = rendered([record], "console"), rendered([record], "json")
    for line in (text, json_line):
        assert line.isprintable(), repr(line)  # no CR, LF, ESC, U+2028: one line, no colours
    assert "/images/x%0D%0AGET /forged 200%1B[31m%E2%80%A8end" in text
    assert json.loads(json_line)["path"] == "/images/x\r\nGET /forged 200\x1b[31m\u2028end"
    assert record.__dict__["status"] == 404 and record.__dict__["route"] == "unmatched"


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


@asynccontextmanager
async def from_addresses(
    env: dict[str, str], home: Path
) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """The app built from ``env``; ``client(address)`` is a client calling from there."""
    async with in_process(env, home) as app:
        clients: dict[str, httpx.AsyncClient] = {}

        def client(address: str) -> httpx.AsyncClient:
            if address not in clients:
                transport = httpx.ASGITransport(app=app.app, client=(address, 40000))
                clients[address] = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
            return clients[address]

        try:
            yield client
        finally:
            for opened in clients.values():
                await opened.aclose()


def _login(name: str, password: str = "wrong-password") -> dict[str, str]:
    return {"username": name, "password": password}


def _assert_429(response: httpx.Response, shape: str) -> None:
    assert response.status_code == 429, response.text
    assert set(response.json()) == ({"error"} if shape == "error" else {"detail", "code"})
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_finding_4_logins_are_limited_per_client_address(tmp_path: Path) -> None:
    env = {"MJCORE_LOGIN_RATE_PER_ADDRESS": "3/minute"}
    async with from_addresses(env, tmp_path) as client:
        first = [
            await client("10.0.0.1").post("/api/login", json=_login(f"name{i}")) for i in range(3)
        ]
        fourth = await client("10.0.0.1").post("/api/login", json=_login("name9"))
        elsewhere = await client("10.0.0.2").post("/api/login", json=_login("name9"))

    assert [r.status_code for r in first] == [401, 401, 401]
    _assert_429(fourth, "error")
    assert elsewhere.status_code == 401


async def test_finding_4_logins_are_limited_per_user_name_from_any_address(
    tmp_path: Path,
) -> None:
    env = {"MJCORE_LOGIN_RATE_PER_NAME": "2/minute"}
    async with from_addresses(env, tmp_path) as client:
        registered = await client("10.0.1.1").post(
            "/api/register", json=_login("alice", "alice-password")
        )
        guesses = [
            await client(f"10.0.1.{i}").post("/api/login", json=_login("alice")) for i in (2, 3)
        ]
        # even the right password waits: the name is under attack
        blocked = await client("10.0.1.4").post(
            "/api/login", json=_login("alice", "alice-password")
        )
        other = await client("10.0.1.5").post("/api/login", json=_login("bob"))

    assert registered.status_code == 200
    assert [r.status_code for r in guesses] == [401, 401]
    _assert_429(blocked, "error")
    assert other.status_code == 401


async def test_finding_4_registrations_are_limited_per_address_and_per_name(
    tmp_path: Path,
) -> None:
    env = {
        "MJCORE_REGISTER_RATE_PER_ADDRESS": "2/minute",
        "MJCORE_REGISTER_RATE_PER_NAME": "2/minute",
    }
    async with from_addresses(env, tmp_path) as client:
        one = client("10.0.2.1")
        made = [await one.post("/api/register", json=_login(f"new{i}")) for i in range(2)]
        third = await one.post("/api/register", json=_login("new2"))
        taken = [
            await client(f"10.0.2.{i}").post("/api/register", json=_login("new0")) for i in (2, 3)
        ]

    assert [r.status_code for r in made] == [200, 200]
    _assert_429(third, "error")
    assert taken[0].status_code == 400  # the name is taken: a second try on it
    _assert_429(taken[1], "error")  # and a third


async def test_finding_14_failed_admin_logins_are_limited_per_address(tmp_path: Path) -> None:
    env = {
        "MJCORE_ADMIN_USERNAME": "root",
        "MJCORE_ADMIN_PASSWORD": "a-long-admin-password",
        "MJCORE_ADMIN_FAILURE_RATE_PER_ADDRESS": "3/minute",
    }
    right, wrong = ("root", "a-long-admin-password"), ("root", "guess")
    async with from_addresses(env, tmp_path) as client:
        attacker = client("10.0.3.1")
        probes = [await attacker.get("/api/admin/stats") for _ in range(5)]  # no credentials
        guesses = [await attacker.get("/api/admin/stats", auth=wrong) for _ in range(3)]
        locked = await attacker.get("/api/admin/stats", auth=right)
        admin = await client("10.0.3.2").get("/api/admin/stats", auth=right)

    assert [r.status_code for r in probes + guesses] == [401] * 8
    _assert_429(locked, "error")  # even the right password, from this address, for a while
    assert admin.status_code == 200


REDIS_URL = os.environ.get("MJCORE_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(
    REDIS_URL is None, reason="MJCORE_TEST_REDIS_URL is not set (CI sets it)"
)


@needs_redis
async def test_finding_4_with_redis_storage_two_apps_share_the_login_limits(
    tmp_path: Path,
) -> None:
    assert REDIS_URL is not None
    env = {
        "MJCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "MJCORE_RATE_LIMIT_STORAGE": REDIS_URL,
        "MJCORE_LOGIN_RATE_PER_NAME": "3/minute",
    }
    name = f"redis_{secrets.token_hex(6)}"  # fresh counters on a shared Redis
    async with in_process(env, tmp_path / "one") as one, in_process(env, tmp_path / "two") as two:
        answers = [
            await app.client.post("/api/login", json=_login(name)) for app in (one, two, one, two)
        ]

    assert [r.status_code for r in answers[:3]] == [401, 401, 401]
    _assert_429(answers[3], "error")


async def test_an_unreachable_rate_limit_storage_stops_start_up_without_its_password() -> None:
    settings = Settings(rate_limit_storage="redis://:hunter2-secret@127.0.0.1:1/0")
    with pytest.raises(RateLimitStorageUnavailable) as caught:
        await open_rate_limits(settings)
    assert "127.0.0.1:1" in str(caught.value) and "hunter2" not in str(caught.value)


def _multipart_chunks(boundary: str, file_bytes: int, pulled: list[int]) -> AsyncIterator[bytes]:
    """A multipart body whose one file is ``file_bytes`` long, sent chunked."""

    async def gen() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"'
            "\r\nContent-Type: image/png\r\n\r\n"
        ).encode() + png()
        async for chunk in _chunks(file_bytes, pulled):
            yield chunk.replace(b" ", b"\0")
        yield f"\r\n--{boundary}--\r\n".encode()

    return gen()


async def test_finding_6_a_chunked_upload_is_cut_at_the_limit_with_413(tmp_path: Path) -> None:
    boundary = "mjcoreboundary"
    async with in_process({"MJCORE_MAX_UPLOAD_BYTES": str(2 * MiB)}, tmp_path) as app:
        user = await new_user(app.database_url)
        pulled: list[int] = []
        response = await app.client.post(
            "/v1/api/trigger/upload",
            content=_multipart_chunks(boundary, 100 * MiB, pulled),
            headers=user.headers | {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        urlencoded = await app.client.post(
            "/v1/api/trigger/upload", data={"file": "x"}, headers=user.headers
        )

    assert response.status_code == 413 and response.json()["code"] == 13
    assert set(response.json()) == {"detail", "code"}
    assert sum(pulled) <= 2 * MiB + 128 * 1024  # read up to the limit, not 100 MiB
    assert urlencoded.status_code == 400 and urlencoded.json()["code"] == 13


async def test_finding_13_upload_and_message_are_rate_limited_per_app_key(
    tmp_path: Path,
) -> None:
    async with in_process({"MJCORE_UPLOAD_RATE_PER_KEY": "2/minute"}, tmp_path) as app:
        user, other = await new_user(app.database_url), await new_user(app.database_url)
        files = {"file": ("a.png", png(), "image/png")}
        uploads = [
            await app.client.post("/v1/api/trigger/upload", files=files, headers=user.headers)
            for _ in range(3)
        ]
        body = {"upload_filename": "1/2/a.png"}
        messages = [
            await app.client.post("/v1/api/trigger/message", json=body, headers=user.headers)
            for _ in range(3)
        ]
        others = await app.client.post("/v1/api/trigger/upload", files=files, headers=other.headers)

    # no Discord here: the calls that get through fail upstream, but they get through
    assert [r.status_code != 429 for r in uploads] == [True, True, False]
    assert [r.status_code != 429 for r in messages] == [True, True, False]
    for refused in (uploads[2], messages[2]):
        _assert_429(refused, "detail")
        assert refused.json()["code"] == 17
    assert others.status_code != 429

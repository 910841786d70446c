"""Findings of the outside security review that live below the HTTP edge: result images,
trigger markers, costly parameters, uploads, revoked JWTs, lengths on every store."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from entrypoints.bootstrap import open_store
from mjcore.clock import system_clock
from mjcore.passwords import Hasher
from mjcore.services import accounts

from ..e2e import CALLBACK_SECRET, User, credits, ledger_ok, new_user, wait_for
from ..fakes.discord import FakeDiscord, listener_event
from ..fakes.images import png
from ..fakes.loopback import LoopbackServer
from ..inprocess import InProcess, in_process
from ..support import open_test_store, store_params, url_for

API = "/v1/api/trigger"
LISTENER = {"X-Callback-Secret": CALLBACK_SECRET}


class _Drip:
    """An image host that never finishes sending (the attack on the shared pool)."""

    def __init__(self) -> None:
        async def drip(request: Request) -> Response:
            async def body() -> AsyncIterator[bytes]:
                yield png()[:8]
                await asyncio.sleep(3600)

            return StreamingResponse(body(), media_type="image/png")

        self.server = LoopbackServer(Starlette(routes=[Route("/{name}", drip)]))
        self.url = self.server.url


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture(scope="module")
def drip() -> Iterator[_Drip]:
    host = _Drip()
    with host.server:
        yield host


@pytest.fixture
async def app(fake: FakeDiscord, drip: _Drip, tmp_path: Path) -> AsyncIterator[InProcess]:
    env = fake.env() | {
        "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
        "MJCORE_MJ_CONCURRENCY": "100",
        "MJCORE_MIRROR_HOSTS": f"{fake.url},{drip.url}",
        "MJCORE_MIRROR_TIMEOUT_S": "2",
        "MJCORE_JWT_SECRET": "a-test-jwt-secret-of-enough-length-0123456789",
    }
    async with in_process(env, tmp_path) as running:
        yield running


async def _grid(app: InProcess, user: User, prompt: str = "a red fox") -> dict[str, Any]:
    answer = await app.client.post(f"{API}/imagine", json={"prompt": prompt}, headers=user.headers)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _end(
    fake: FakeDiscord, trigger: str, message_id: int, url: str | None = None
) -> dict[str, Any]:
    event = listener_event(
        fake,
        "end",
        trigger,
        message_id,
        f"**<#{trigger}#>a red fox** - <@1> (fast)",
        msg_hash=str(uuid.uuid4()),
    )
    if url is not None:
        event["attachments"][0]["url"] = url
    return event


async def test_finding_2_mirroring_copies_once_only_after_the_task_is_won(
    app: InProcess, fake: FakeDiscord
) -> None:
    user = await new_user(app.database_url, 5)
    grid = await _grid(app, user)
    before = fake.cdn_downloads
    event = _end(fake, grid["trigger_id"], 9001)

    answers = await asyncio.gather(
        *(
            app.client.post(f"{API}/midjourney/result", json=event, headers=LISTENER)
            for _ in range(40)
        )
    )

    assert sorted(a.json()["message"] for a in answers).count("success") == 1
    assert fake.cdn_downloads - before == 1  # the 39 that lost copied nothing
    done = await wait_for(app.client, user, grid["task_id"], lambda t: t["status"] == "SUCCESS")
    assert done["image_url"].startswith("http://mjcore.test/images/")


async def test_finding_2_mirroring_cannot_starve_discord_submissions(
    app: InProcess, fake: FakeDiscord, drip: _Drip
) -> None:
    user = await new_user(app.database_url, 60)
    grids = [await _grid(app, user) for _ in range(30)]
    forged = [
        asyncio.create_task(
            app.client.post(
                f"{API}/midjourney/result",
                json=_end(fake, g["trigger_id"], 9100 + i, f"{drip.url}/slow_{i}.png"),
                headers=LISTENER,
            )
        )
        for i, g in enumerate(grids)
    ]
    await asyncio.sleep(0.3)  # the copies are all hanging on the drip host now
    started = asyncio.get_running_loop().time()
    fresh = await app.client.post(f"{API}/imagine", json={"prompt": "x"}, headers=user.headers)
    took = asyncio.get_running_loop().time() - started
    await asyncio.gather(*forged)

    assert fresh.status_code == 200 and fresh.json()["status"] == "SUBMITTED"
    assert took < 1.0, took  # Discord's client is not the copies' client
    tasks = (await app.client.get(f"{API}/tasks?limit=100", headers=user.headers)).json()["data"]
    # the jobs ended, keeping Discord's (drip host's) URL: the copy gave up at its deadline
    assert sum(t["status"] == "SUCCESS" for t in tasks) == 30


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "javascript:alert(1)", "https://evil.example/fox.png"]
)
async def test_finding_5_a_result_url_that_is_not_allowed_never_reaches_a_client(
    app: InProcess, fake: FakeDiscord, url: str
) -> None:
    user = await new_user(app.database_url, 5)
    grid = await _grid(app, user)
    answer = await app.client.post(
        f"{API}/midjourney/result", json=_end(fake, grid["trigger_id"], 9200, url), headers=LISTENER
    )
    task = (await app.client.get(f"{API}/task/{grid['task_id']}", headers=user.headers)).json()
    assert answer.json()["message"] == "unchanged"
    assert task["status"] == "SUBMITTED" and task["image_url"] is None


async def test_finding_12_a_jwt_dies_with_a_new_password_or_key(app: InProcess) -> None:
    login = {"username": "jwtuser", "password": "first password"}
    await app.client.post("/api/register", json=login)
    token = (await app.client.post("/api/login", json=login)).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await app.client.get("/api/user", headers=bearer)).status_code == 200

    store = await open_store(app.database_url, 2)
    try:
        await accounts.set_password(store, system_clock, Hasher(), "jwtuser", "second password")
        after_password = await app.client.get("/api/user", headers=bearer)
        login["password"] = "second password"
        token = (await app.client.post("/api/login", json=login)).json()["token"]
        await accounts.rotate_key(store, system_clock, "jwtuser")
        after_key = await app.client.get("/api/user", headers={"Authorization": f"Bearer {token}"})
    finally:
        await store.close()
    assert after_password.status_code == after_key.status_code == 401


async def test_finding_13_uploads_are_described_and_posted_only_by_their_uploader(
    app: InProcess, fake: FakeDiscord
) -> None:
    alice, mallory = await new_user(app.database_url, 5), await new_user(app.database_url, 5)
    upload = await app.client.post(
        f"{API}/upload", files={"file": ("a.png", png(), "image/png")}, headers=alice.headers
    )
    stolen = upload.json()

    describe = await app.client.post(f"{API}/describe", json=stolen, headers=mallory.headers)
    message = await app.client.post(f"{API}/message", json=stolen, headers=mallory.headers)

    assert describe.status_code == message.status_code == 404
    assert await credits(app.database_url, mallory) == 5
    own = await app.client.post(f"{API}/describe", json=stolen, headers=alice.headers)
    assert own.status_code == 200


@pytest.mark.parametrize(
    "prompt",
    [
        "a fox --repeat 40",
        "a fox --r 40 --ar 16:9",
        "a fox --turbo",
        "a fox <#1234567890123456#>",
    ],
)
async def test_finding_8_prompts_that_cost_more_or_steer_results_are_refused_for_free(
    app: InProcess, fake: FakeDiscord, prompt: str
) -> None:
    user = await new_user(app.database_url, 5)
    sent = len(fake.sent())
    answer = await app.client.post(f"{API}/imagine", json={"prompt": prompt}, headers=user.headers)
    assert answer.status_code == 400 and answer.json()["code"] == 13
    assert len(fake.sent()) == sent and await credits(app.database_url, user) == 5


# -- the same answer on every store -------------------------------------------------------

OVERSIZED: list[tuple[str, str, Any]] = [
    ("post", f"{API}/imagine", {"prompt": "a fox\u0000"}),
    ("post", f"{API}/imagine", {"prompt": "a fox \ud800"}),
    ("post", f"{API}/upscale", {"task_id": "t" * 65, "index": 1}),
    (
        "post",
        f"{API}/upscale",
        {"msg_id": "1" * 21, "msg_hash": "a" * 36, "trigger_id": "1", "index": 1},
    ),
    (
        "post",
        f"{API}/upscale",
        {"msg_id": "1", "msg_hash": "a" * 65, "trigger_id": "1", "index": 1},
    ),
    ("post", f"{API}/reset", {"msg_id": "1", "msg_hash": "a" * 36, "trigger_id": "t" * 65}),
    ("post", f"{API}/queue/release", {"trigger_id": "1" * 65}),
    ("post", "/api/register", {"username": "a" * 65, "password": "long enough"}),
    ("post", "/api/login", {"username": "a" * 65, "password": "x"}),
    ("post", "/api/redeem", {"code": "A" * 65}),
    ("get", f"{API}/task/{'t' * 300}", None),
    ("get", f"{API}/result/%00", None),
    ("get", f"{API}/tasks?limit=%C2%B2", None),
]


@pytest.mark.parametrize("kind", [p for p in store_params() if p.id != "memory"])  # type: ignore[attr-defined]
async def test_finding_11_bad_text_is_a_400_the_same_on_every_store(
    kind: str, fake: FakeDiscord, tmp_path: Path
) -> None:
    async with open_test_store(kind, tmp_path):
        pass  # a fresh, migrated database
    env = fake.env() | {
        "MJCORE_DATABASE_URL": url_for(kind, tmp_path),
        "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
    }
    async with in_process(env, tmp_path) as app:
        user = await new_user(app.database_url, 5)
        login = {"username": "lengths", "password": "long enough"}
        await app.client.post("/api/register", json=login)
        token = (await app.client.post("/api/login", json=login)).json()["token"]
        statuses = []
        for method, path, body in OVERSIZED:
            headers = user.headers if path.startswith(API) else {"Authorization": f"Bearer {token}"}
            content = None if body is None else json.dumps(body)  # escapes a lone surrogate
            headers = headers | {"Content-Type": "application/json"}
            answer = await app.client.request(method, path, content=content, headers=headers)
            statuses.append((path, answer.status_code))
        assert await ledger_ok(app.database_url)
    assert all(status in (400, 404) for _, status in statuses), statuses
    assert [s for _, s in statuses].count(404) == 2  # the unknown task ids in a path

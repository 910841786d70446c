"""Callbacks and Idempotency-Keys end to end: the app in process, a receiver on loopback.

The receiver is a real HTTP server; signatures are checked with the ``standardwebhooks``
package, as a client's receiver would.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from entrypoints.bootstrap import open_store
from mjcore.ports import Store
from mjcore.tasks import Task
from mjcore.webhooks import Delivery

from ..e2e import CALLBACK_SECRET, GENEROUS_RATE_LIMITS, User, credits, new_user, wait_for
from ..fakes.discord import FakeDiscord, listener_event
from ..fakes.fireworks import FakeFireworks
from ..fakes.images import png
from ..fakes.webhooks import Received, Receiver
from ..inprocess import InProcess, in_process, polled, until

API = "/v1/api/trigger"
SECRET = "whsec_" + base64.b64encode(b"mjcore-webhook-test-secret-32byt").decode()
ADMIN = ("hooks-admin", "hooks-admin-password-1")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def fireworks() -> Iterator[FakeFireworks]:
    with FakeFireworks() as fake:
        yield fake


def _env(discord: FakeDiscord, fireworks: FakeFireworks, **extra: str) -> dict[str, str]:
    return (
        discord.env()
        | fireworks.env()
        | GENEROUS_RATE_LIMITS
        | {
            "MJCORE_MJ_CONCURRENCY": "1000",
            "MJCORE_MJ_QUEUE_SIZE": "1000",
            "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
            "MJCORE_WEBHOOK_SECRET": SECRET,
            "MJCORE_WEBHOOK_INTERVAL_S": "0.05",
            "MJCORE_WEBHOOK_FIRST_RETRY_S": "0.05",
            "MJCORE_WEBHOOK_LAST_RETRY_S": "1",
            "MJCORE_ADMIN_USERNAME": ADMIN[0],
            "MJCORE_ADMIN_PASSWORD": ADMIN[1],
            "MJCORE_JWT_SECRET": "webhook-tests-jwt-secret-" + "0123456789abcdef" * 2,
        }
        | {f"MJCORE_{k.upper()}": v for k, v in extra.items()}
    )


@pytest.fixture
async def app(
    discord: FakeDiscord, fireworks: FakeFireworks, home: Path
) -> AsyncIterator[InProcess]:
    """Private targets allowed: the receiver is on loopback."""
    async with in_process(_env(discord, fireworks, webhook_allow_private="1"), home) as running:
        yield running


@pytest.fixture
async def strict(
    discord: FakeDiscord, fireworks: FakeFireworks, home: Path
) -> AsyncIterator[InProcess]:
    """The default: callbacks only to public https addresses."""
    async with in_process(_env(discord, fireworks), home) as running:
        yield running


def _hook(receiver: Receiver, kind: str) -> str:
    return f"{receiver.url}/{kind}/{secrets.token_hex(6)}"


def _path(url: str) -> str:
    return httpx.URL(url).path


async def _imagine(app: InProcess, user: User, **body: Any) -> dict[str, Any]:
    response = await app.client.post(
        f"{API}/imagine", json={"prompt": "a red fox"} | body, headers=user.headers
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _event(
    app: InProcess, discord: FakeDiscord, kind: str, trigger: str, text: str, **extra: Any
) -> None:
    content = f"**<#{trigger}#>a red fox** - <@1093106715702083594> {text}"
    event = listener_event(discord, kind, trigger, 1112838432968949790, content, **extra)
    response = await app.client.post(
        f"{API}/midjourney/result", json=event, headers={"X-Callback-Secret": CALLBACK_SECRET}
    )
    assert response.status_code == 200, response.text


async def _delivered(receiver: Receiver, path: str, event: str) -> None:
    await until(lambda: any(r.json()["event"] == event for r in receiver.delivered(path)))


async def test_a_receiver_failing_three_times_gets_each_event_once_signed_and_the_same(
    app: InProcess, discord: FakeDiscord, receiver: Receiver
) -> None:
    user = await new_user(app.database_url)
    hook = _hook(receiver, "fail3")
    accepted = await _imagine(app, user, notify_hook=hook)
    trigger, path = accepted["trigger_id"], _path(hook)

    await _event(app, discord, "start", trigger, "(Waiting to start)")
    await _delivered(receiver, path, "task.started")
    await _event(app, discord, "generating", trigger, "(31%) (fast)")
    await _delivered(receiver, path, "task.progress")
    await _event(app, discord, "end", trigger, "(fast)", msg_hash=str(uuid.uuid4()))
    await _delivered(receiver, path, "task.succeeded")

    attempts: dict[str, list[Received]] = defaultdict(list)
    for request in receiver.seen(path):
        attempts[request.webhook_id].append(request)
    assert len(attempts) == 3
    for tries in attempts.values():
        assert [r.status for r in tries] == [503, 503, 503, 200]
        assert len({r.body for r in tries}) == 1  # the same event, byte for byte
    bodies = {tries[0].json()["event"]: tries[0].json() for tries in attempts.values()}
    assert bodies.keys() == {"task.started", "task.progress", "task.succeeded"}
    assert (bodies["task.started"]["status"], bodies["task.started"]["type"]) == (
        "IN_PROGRESS",
        "start",
    )
    assert bodies["task.progress"]["progress"] == 31
    done = bodies["task.succeeded"]
    assert done["task_id"] == accepted["task_id"] and done["status"] == "SUCCESS"
    assert done["image_url"] and done["imageUrl"] == done["image_url"]
    assert done["type"] == "end" and done["trigger_id"] == trigger
    polled = (
        await app.client.get(f"{API}/task/{accepted['task_id']}", headers=user.headers)
    ).json()
    images = ("image_url", "imageUrl")  # our copy, unless it was not made yet when sent
    assert {k: v for k, v in done.items() if k not in ("event", "type", *images)} == {
        k: v for k, v in polled.items() if k not in images
    }
    copy = done["image_url"] == polled["image_url"]
    assert copy or done["image_url"].startswith(discord.cdn(""))  # or Discord's, as reported
    for request in receiver.seen(path):
        assert request.headers["content-type"] == "application/json"
        assert Webhook(SECRET).verify(request.body, request.headers) == request.json()
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + base64.b64encode(b"another" * 5).decode()).verify(
                request.body, request.headers
            )
        stamp = int(request.headers["webhook-timestamp"])
        assert abs(stamp - datetime.now(UTC).timestamp()) < 300
    scraped = (await app.client.get("/metrics")).text
    assert _counted(scraped, "retry") >= 9 and _counted(scraped, "delivered") >= 3


def _counted(scraped: str, outcome: str) -> float:
    line = f'mjcore_webhook_deliveries_total{{outcome="{outcome}"}} '
    return sum(float(x.removeprefix(line)) for x in scraped.splitlines() if x.startswith(line))


async def test_yokonsan_callback_url_gets_start_progress_and_end_of_every_task(
    discord: FakeDiscord, fireworks: FakeFireworks, receiver: Receiver, home: Path
) -> None:
    everything = _hook(receiver, "all")
    env = _env(discord, fireworks, webhook_allow_private="1", callback_url=everything)
    async with in_process(env, home) as app:
        user = await new_user(app.database_url)
        accepted = await _imagine(app, user)  # no hook of its own
        trigger = accepted["trigger_id"]
        path = _path(everything)
        await _event(app, discord, "start", trigger, "(Waiting to start)")
        await _delivered(receiver, path, "task.started")
        await _event(app, discord, "generating", trigger, "(62%) (fast)")
        await _delivered(receiver, path, "task.progress")
        await _event(app, discord, "end", trigger, "(fast)", msg_hash=str(uuid.uuid4()))
        await _delivered(receiver, path, "task.succeeded")

    got = [r.json() for r in receiver.delivered(path)]
    assert [(b["type"], b["task_id"], b["trigger_id"]) for b in got] == [
        ("start", accepted["task_id"], trigger),
        ("generating", accepted["task_id"], trigger),
        ("end", accepted["task_id"], trigger),
    ]
    assert got[1]["progress"] == 62 and got[2]["status"] == "SUCCESS"


async def test_every_consuming_endpoint_takes_a_hook_by_either_name(
    app: InProcess, discord: FakeDiscord, receiver: Receiver
) -> None:
    user = await new_user(app.database_url, tokens=20)
    hook = _hook(receiver, "ok")
    grid = await _imagine(app, user, notifyHook=hook)  # midjourney-proxy's name
    await _event(app, discord, "end", grid["trigger_id"], "(fast)", msg_hash=str(uuid.uuid4()))
    await wait_for(app.client, user, grid["task_id"], lambda t: t["status"] == "SUCCESS")
    uploaded = await app.client.post(
        f"{API}/upload", files={"file": ("cat.png", png(16, 16), "image/png")}, headers=user.headers
    )
    follow_ups = [
        ("upscale", {"task_id": grid["task_id"], "index": 1}),
        ("variation", {"task_id": grid["task_id"], "index": 2}),
        ("reset", {"task_id": grid["task_id"]}),
        ("describe", {k: uploaded.json()[k] for k in ("upload_filename", "trigger_id")}),
    ]
    for action, body in follow_ups:
        response = await app.client.post(
            f"{API}/{action}", json=body | {"notify_hook": hook}, headers=user.headers
        )
        assert response.status_code == 200, (action, response.text)
        [task] = await _tasks(app, response.json()["task_id"])
        assert task.params["hooks"] == [{"url": hook, "style": "mjcore"}], action
    await _delivered(receiver, _path(hook), "task.succeeded")


@asynccontextmanager
async def _opened(app: InProcess) -> AsyncIterator[Store]:
    store = await open_store(app.database_url, 2)
    try:
        yield store
    finally:
        await store.close()


async def _tasks(app: InProcess, *task_ids: str) -> list[Task]:
    async with _opened(app) as store, store.unit_of_work(readonly=True) as uow:
        found = [await uow.tasks.get(task_id) for task_id in task_ids]
    return [t for t in found if t is not None]


async def _deliveries(app: InProcess, task_id: str) -> list[Delivery]:
    async with _opened(app) as store, store.unit_of_work(readonly=True) as uow:
        return list(await uow.webhooks.list(task_id=task_id, statuses=None, limit=100))


@pytest.mark.parametrize(
    ("hook", "why"),
    [
        ("http://127.0.0.1:9/hook", "https"),
        ("https://127.0.0.1:9/hook", "public"),
        ("https://169.254.169.254/latest", "public"),
        ("https://localhost/hook", "public"),
        ("file:///etc/passwd", "URL"),
    ],
)
async def test_a_private_hook_is_refused_at_submit_and_nothing_is_charged(
    strict: InProcess, hook: str, why: str
) -> None:
    user = await new_user(strict.database_url)

    imagine = await strict.client.post(
        f"{API}/imagine", json={"prompt": "a fox", "notify_hook": hook}, headers=user.headers
    )

    assert imagine.status_code == 400, imagine.text
    assert why in imagine.json()["detail"]
    assert await credits(strict.database_url, user) == 10
    listed = await strict.client.get(f"{API}/tasks", headers=user.headers)
    assert listed.json()["total"] == 0


async def test_a_private_hook_is_refused_on_generate_too(strict: InProcess) -> None:
    headers = await _signup(strict, credits_=3)

    response = await strict.client.post(
        "/api/generate",
        json={"prompt": "a lighthouse", "notify_hook": "https://10.0.0.1/in"},
        headers=headers,
    )

    assert response.status_code == 400
    assert "public" in response.json()["error"]
    me = (await strict.client.get("/api/user", headers=headers)).json()
    assert me["credits"] == 3


async def test_a_name_that_resolves_to_a_private_address_at_send_time_is_not_called(
    strict: InProcess, discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    answer = {"hooks.example": "93.184.215.14"}

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answer:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer[host], port))]
        return await real(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    user = await new_user(strict.database_url)
    accepted = await _imagine(strict, user, notify_hook="https://hooks.example/mj")
    answer["hooks.example"] = "10.0.0.1"  # the name now points inside

    await _event(strict, discord, "error", accepted["trigger_id"], "(Stopped)")

    [delivery] = await polled(
        lambda: _deliveries(strict, accepted["task_id"]),
        lambda found: bool(found) and found[0].attempts >= 2,
    )
    assert delivery.event == "task.failed" and delivery.last_status is None
    assert delivery.last_error is not None and "public" in delivery.last_error


async def _signup(app: InProcess, credits_: int) -> dict[str, str]:
    name, password = f"hooks_{secrets.token_hex(4)}", "a long enough password"
    await app.client.post("/api/register", json={"username": name, "password": password})
    login = await app.client.post("/api/login", json={"username": name, "password": password})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    if credits_:
        [code] = await _codes(app, credits_, 1)
        assert (
            await app.client.post("/api/redeem", json={"code": code}, headers=headers)
        ).is_success
    return headers


def _admin() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(":".join(ADMIN).encode()).decode()}


async def _codes(app: InProcess, credits_: int, count: int) -> list[str]:
    response = await app.client.post(
        "/api/admin/codes", json={"credits": credits_, "count": count}, headers=_admin()
    )
    assert response.status_code == 200, response.text
    return list(response.json()["codes"])


async def test_the_admin_api_lists_dead_letters_and_retries_them(
    discord: FakeDiscord, fireworks: FakeFireworks, receiver: Receiver, home: Path
) -> None:
    env = _env(discord, fireworks, webhook_allow_private="1", webhook_attempts="2")
    async with in_process(env, home) as app:
        user = await new_user(app.database_url)
        hook = _hook(receiver, "fail3")
        accepted = await _imagine(app, user, notify_hook=hook)
        await _event(app, discord, "error", accepted["trigger_id"], "(Stopped)")
        task = accepted["task_id"]

        [dead] = await polled(lambda: _listed(app, f"?failed=true&task={task}"), bool)
        assert (dead["status"], dead["attempts"], dead["last_status"]) == ("dead", 2, 503)
        assert dead["event"] == "task.failed" and dead["url"] == hook
        for attempt in (3, 4):  # a retry is one more attempt: the receiver takes the 4th
            retried = await app.client.post(
                f"/api/admin/webhooks/{dead['id']}/retry", headers=_admin()
            )
            assert retried.status_code == 200 and retried.json()["status"] == "pending"
            await polled(lambda: _listed(app, f"?task={task}"), _settled)
            assert len(receiver.seen(_path(hook))) == attempt

        [after] = await _listed(app, f"?task={task}")
        assert (after["status"], after["attempts"]) == ("delivered", 4)
        assert {r.webhook_id for r in receiver.seen(_path(hook))} == {dead["webhook_id"]}
        assert await _listed(app, f"?failed=1&task={task}") == []
        unknown = await app.client.post("/api/admin/webhooks/99999999/retry", headers=_admin())
        assert unknown.status_code == 404
        assert (await app.client.get("/api/admin/webhooks")).status_code == 401


def _settled(listed: list[dict[str, Any]]) -> bool:
    return bool(listed[0]["status"] != "pending")


async def _listed(app: InProcess, query: str) -> list[dict[str, Any]]:
    response = await app.client.get(f"/api/admin/webhooks{query}", headers=_admin())
    assert response.status_code == 200, response.text
    return list(response.json()["deliveries"])


# -- Idempotency-Key --------------------------------------------------------------------


async def test_fifty_concurrent_imagines_with_one_key_make_one_task_and_one_debit(
    app: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(app.database_url, tokens=100)
    headers = user.headers | {"Idempotency-Key": "imagine-once-" + secrets.token_hex(4)}
    body = {"prompt": "a red fox, once", "notify_hook": None}
    before = len(discord.prompts())

    answers = await asyncio.gather(
        *(app.client.post(f"{API}/imagine", json=body, headers=headers) for _ in range(50))
    )

    ok = [a for a in answers if a.status_code == 200]
    assert {a.status_code for a in answers} <= {200, 409}
    assert len({a.text for a in ok}) == 1 and ok
    assert all(a.json()["code"] == 18 for a in answers if a.status_code == 409)
    assert await credits(app.database_url, user) == 99
    assert len(discord.prompts()) == before + 1
    listed = (await app.client.get(f"{API}/tasks", headers=user.headers)).json()
    assert listed["total"] == 1

    again = await app.client.post(f"{API}/imagine", json=body, headers=headers)
    assert (again.status_code, again.text) == (200, ok[0].text)
    assert again.headers["idempotent-replayed"] == "true"
    other = await app.client.post(
        f"{API}/imagine", json=body | {"prompt": "something else"}, headers=headers
    )
    assert other.status_code == 422 and "different request" in other.json()["detail"]
    fresh = await app.client.post(
        f"{API}/imagine", json=body, headers=user.headers | {"Idempotency-Key": "another"}
    )
    assert fresh.status_code == 200 and fresh.json()["task_id"] != ok[0].json()["task_id"]
    assert await credits(app.database_url, user) == 98


async def test_a_key_is_one_accounts_and_a_bad_key_is_a_400(app: InProcess) -> None:
    alice, bob = await new_user(app.database_url), await new_user(app.database_url)
    key = {"Idempotency-Key": "shared-name"}
    body = {"prompt": "a red fox"}

    first = await app.client.post(f"{API}/imagine", json=body, headers=alice.headers | key)
    second = await app.client.post(f"{API}/imagine", json=body, headers=bob.headers | key)
    bad = await app.client.post(
        f"{API}/imagine", json=body, headers=alice.headers | {"Idempotency-Key": "x" * 300}
    )

    assert first.status_code == second.status_code == 200
    assert first.json()["task_id"] != second.json()["task_id"]
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["detail"]
    assert await credits(app.database_url, alice) == await credits(app.database_url, bob) == 9


async def test_fifty_concurrent_generates_with_one_key_pay_once(
    app: InProcess, fireworks: FakeFireworks
) -> None:
    headers = await _signup(app, credits_=10)
    keyed = headers | {"Idempotency-Key": str(uuid.uuid4())}
    body = {"prompt": "a lighthouse at dusk", "seed": 7}
    before = len(fireworks.seen())

    answers = await asyncio.gather(
        *(app.client.post("/api/generate", json=body, headers=keyed) for _ in range(50))
    )

    ok = [a for a in answers if a.status_code == 200]
    assert {a.status_code for a in answers} <= {200, 409}
    assert ok and len({a.text for a in ok}) == 1
    assert all("still running" in a.json()["error"] for a in answers if a.status_code == 409)
    me = (await app.client.get("/api/user", headers=headers)).json()
    assert (me["credits"], me["totalGenerated"]) == (9, 1)
    assert len(fireworks.seen()) == before + 1
    other = await app.client.post("/api/generate", json=body | {"seed": 8}, headers=keyed)
    assert other.status_code == 422


async def test_fifty_concurrent_redeems_with_one_key_give_one_answer(app: InProcess) -> None:
    headers = await _signup(app, credits_=0)
    [code] = await _codes(app, 7, 1)
    keyed = headers | {"Idempotency-Key": "redeem-" + secrets.token_hex(4)}

    answers = await asyncio.gather(
        *(app.client.post("/api/redeem", json={"code": code}, headers=keyed) for _ in range(50))
    )

    ok = [a for a in answers if a.status_code == 200]
    assert {a.status_code for a in answers} <= {200, 409}
    assert ok and {a.text for a in ok} == {ok[0].text}
    assert ok[0].json() == {"message": "兑换成功", "credits": 7, "totalCredits": 7}
    [another] = await _codes(app, 5, 1)
    mismatch = await app.client.post("/api/redeem", json={"code": another}, headers=keyed)
    assert mismatch.status_code == 422
    me = (await app.client.get("/api/user", headers=headers)).json()
    assert me["credits"] == 7

"""midjourney-proxy's ``/mj`` API, driven as its clients drive it.

The client here is written from novicezk's ``docs/api.md`` and its DTOs (plain JSON over
httpx, no code of ours), and from new-api's ``dto/midjourney.go``: requests serialised as
its ``MidjourneyRequest`` struct serialises them (every field, empty ones too), answers
read into the fields its ``MidjourneyResponse`` and ``MidjourneyDto`` declare. Jobs end the
way Midjourney ends them: the listener's events on the HTTP callback.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..e2e import CALLBACK_SECRET, GENEROUS_RATE_LIMITS, User, credits, ledger_kinds, ledger_ok
from ..e2e import new_user as make_user
from ..fakes.discord import FakeDiscord, listener_event
from ..fakes.images import png
from ..fakes.webhooks import Received, Receiver
from ..inprocess import InProcess, in_process, until

PROMPT = "a red fox"
GO_STRING, GO_INT64 = (str, type(None)), (int, type(None))  # Go reads null as the zero value
MIDJOURNEY_DTO: dict[str, tuple[type, ...]] = {
    "id": GO_STRING,
    "action": GO_STRING,
    "customId": GO_STRING,
    "botType": GO_STRING,
    "prompt": GO_STRING,
    "promptEn": GO_STRING,
    "description": GO_STRING,
    "state": GO_STRING,
    "submitTime": GO_INT64,
    "startTime": GO_INT64,
    "finishTime": GO_INT64,
    "imageUrl": GO_STRING,
    "status": GO_STRING,
    "progress": GO_STRING,
    "failReason": GO_STRING,
    "buttons": (list, type(None)),
    "maskBase64": GO_STRING,
    "properties": (dict, type(None)),
}
"""new-api's ``dto.MidjourneyDto``: json tag → the JSON types its Go field accepts."""
PROPERTIES = {"finalPrompt": GO_STRING, "finalZhPrompt": GO_STRING}  # dto.Properties
ACTION_BUTTON = ("customId", "emoji", "label", "type", "style")  # dto.ActionButton
MIDJOURNEY_RESPONSE = {"code": (int,), "description": GO_STRING, "result": GO_STRING}


def new_api_request(**given: Any) -> dict[str, Any]:
    """A body as new-api's ``dto.MidjourneyRequest`` marshals it: every field, Go zero
    values for those not set (``base64Array`` nil is ``null``)."""
    zero = {
        "prompt": "",
        "customId": "",
        "botType": "",
        "notifyHook": "",
        "action": "",
        "index": 0,
        "state": "",
        "taskId": "",
        "base64Array": None,
        "content": "",
        "maskBase64": "",
    }
    return zero | given


def assert_new_api_reads_response(body: dict[str, Any]) -> None:
    for name, kinds in MIDJOURNEY_RESPONSE.items():
        assert isinstance(body.get(name), kinds), (name, body)
    assert isinstance(body["properties"], dict | type(None))


def assert_new_api_reads_task(task: dict[str, Any]) -> None:
    """Every field new-api's ``MidjourneyDto`` reads is here, with a JSON type it accepts."""
    for name, kinds in MIDJOURNEY_DTO.items():
        assert name in task and isinstance(task[name], kinds), (name, task.get(name))
    for name, kinds in PROPERTIES.items():
        assert isinstance(task["properties"][name], kinds), name
    for button in task["buttons"]:
        assert set(ACTION_BUTTON) <= set(button)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
async def app(discord: FakeDiscord, home: Path) -> AsyncIterator[InProcess]:
    env = (
        discord.env()
        | GENEROUS_RATE_LIMITS
        | {
            "MJCORE_MJ_CONCURRENCY": "1000",
            "MJCORE_MJ_QUEUE_SIZE": "1000",
            "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
            "MJCORE_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on loopback
            "MJCORE_WEBHOOK_INTERVAL_S": "0.05",
        }
    )
    async with in_process(env, home) as running:
        yield running


def hooked(receiver: Receiver, hook: str) -> list[Received]:
    return receiver.delivered(httpx.URL(hook).path)


def proxy(app: InProcess, key: str, bearer: bool = False) -> httpx.AsyncClient:
    """A midjourney-proxy client: the secret in ``mj-api-secret`` (or as new-api relays
    it, a bearer token)."""
    headers = {"Authorization": f"Bearer {key}"} if bearer else {"mj-api-secret": key}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app.app), base_url=app.url, headers=headers
    )


async def new_user(app: InProcess, tokens: int = 10) -> User:
    return await make_user(app.database_url, tokens)


async def listener(
    app: InProcess, discord: FakeDiscord, kind: str, trigger: str, **how: Any
) -> None:
    """What the listener bot posts when Midjourney writes about the job."""
    wording = how.pop("wording", "(fast)")
    content = f"**<#{trigger}#>{PROMPT}** - {wording}"
    message_id = how.pop("message_id", 1112838432968949790)
    event = listener_event(discord, kind, trigger, message_id, content, **how)
    response = await app.client.post(
        "/v1/api/trigger/midjourney/result",
        json=event,
        headers={"X-Callback-Secret": CALLBACK_SECRET},
    )
    assert response.status_code == 200, response.text


async def trigger_of(app: InProcess, user: User, task_id: str) -> str:
    response = await app.client.get(f"/v1/api/trigger/task/{task_id}", headers=user.headers)
    trigger: str = response.json()["trigger_id"]
    return trigger


async def fetch(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/mj/task/{task_id}/fetch")
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


async def submit(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/mj/submit/{path}", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_imagine_fetch_change_action_list_with_novicezk_task_bodies_on_the_hook(
    app: InProcess, discord: FakeDiscord, receiver: Receiver
) -> None:
    user = await new_user(app)
    hook = f"{receiver.url}/mj/{secrets.token_hex(6)}"
    async with proxy(app, user.key) as client:
        # POST /mj/submit/imagine {prompt, notifyHook, state} -> {code: 1, result: <task id>}
        submitted = await submit(
            client, "imagine", {"prompt": PROMPT, "notifyHook": hook, "state": "order-7"}
        )
        assert submitted["code"] == 1 and submitted["description"]
        grid_id = submitted["result"]
        task = await fetch(client, grid_id)
        assert (task["id"], task["action"], task["status"]) == (grid_id, "IMAGINE", "SUBMITTED")
        assert task["prompt"] == PROMPT and task["state"] == "order-7"
        assert task["progress"] == "0%" and isinstance(task["submitTime"], int)

        trigger = await trigger_of(app, user, grid_id)
        await listener(app, discord, "start", trigger, wording="<@1> (Waiting to start)")
        await until(
            lambda: any(r.json()["status"] == "IN_PROGRESS" for r in hooked(receiver, hook))
        )
        await listener(app, discord, "generating", trigger, wording="<@1> (42%) (fast)")
        assert (await fetch(client, grid_id))["progress"] == "42%"
        grid_hash = str(uuid.uuid4())
        await listener(
            app, discord, "end", trigger, message_id=1112838593312997377, msg_hash=grid_hash
        )
        grid = await fetch(client, grid_id)
        assert grid["status"] == "SUCCESS" and grid["progress"] == "100%"
        assert grid["imageUrl"].startswith(f"{app.url}/images/")
        assert grid["submitTime"] <= grid["startTime"] <= grid["finishTime"]
        labels = [b["label"] or b["emoji"] for b in grid["buttons"]]
        assert labels == ["U1", "U2", "U3", "U4", "\U0001f504", "V1", "V2", "V3", "V4"]
        assert grid["buttons"][0]["customId"] == f"MJ::JOB::upsample::1::{grid_hash}"

        # POST /mj/submit/change {taskId, action: UPSCALE, index: 1}
        u1 = await submit(client, "change", {"taskId": grid_id, "action": "UPSCALE", "index": 1})
        assert u1["code"] == 1
        upscale = await fetch(client, u1["result"])
        assert upscale["action"] == "UPSCALE" and upscale["description"] == f"/up {grid_id} U1"
        await listener(
            app, discord, "end", trigger, wording="Image #1 <@1>", message_id=3001,
            msg_hash=str(uuid.uuid4()),
        )  # fmt: skip
        upscaled = await fetch(client, u1["result"])
        assert upscaled["status"] == "SUCCESS"
        zoom = next(b for b in upscaled["buttons"] if b["label"] == "Zoom Out 2x")
        assert zoom["customId"].startswith("MJ::Outpaint::50::1::")

        # POST /mj/submit/action {taskId, customId} (midjourney-proxy-plus)
        zoomed = await submit(
            client, "action", {"taskId": u1["result"], "customId": zoom["customId"]}
        )
        assert zoomed["code"] == 1
        await listener(
            app, discord, "end", trigger, wording="Zoom Out by <@1> (fast)", message_id=3002,
            msg_hash=str(uuid.uuid4()),
        )  # fmt: skip
        zoom_task = await fetch(client, zoomed["result"])
        assert (zoom_task["action"], zoom_task["status"]) == ("ZOOM", "SUCCESS")
        assert zoom_task["customId"] == zoom["customId"]

        # POST /mj/task/list-by-condition {ids}
        ids = [grid_id, u1["result"], zoomed["result"], "no-such-task"]
        listed = (await client.post("/mj/task/list-by-condition", json={"ids": ids})).json()
        assert [t["id"] for t in listed] == ids[:3]
        assert all(t["status"] == "SUCCESS" for t in listed)
        for one in listed:
            assert_new_api_reads_task(one)

    await until(lambda: any(r.json()["status"] == "SUCCESS" for r in hooked(receiver, hook)))
    bodies = [r.json() for r in hooked(receiver, hook)]
    assert {b["status"] for b in bodies} >= {"IN_PROGRESS", "SUCCESS"}
    for body in bodies:  # novicezk's task object, as docs/api.md's "任务变更回调" shows it
        assert body["id"] == grid_id and body["action"] == "IMAGINE" and body["state"] == "order-7"
        assert_new_api_reads_task(body)
        assert "task_id" not in body and "event" not in body
    assert await credits(app.database_url, user) == 10 - 3
    assert await ledger_ok(app.database_url)


async def test_new_api_requests_round_trip_through_every_submit(
    app: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(app, tokens=10)
    async with proxy(app, user.key, bearer=True) as client:  # new-api relays the key as Bearer
        imagine = await client.post("/mj/submit/imagine", json=new_api_request(prompt=PROMPT))
        assert imagine.status_code == 200
        assert_new_api_reads_response(imagine.json())
        grid_id = imagine.json()["result"]
        assert imagine.json()["code"] == 1
        await listener(
            app, discord, "end", await trigger_of(app, user, grid_id), msg_hash=str(uuid.uuid4())
        )

        requests = {
            "change": new_api_request(taskId=grid_id, action="VARIATION", index=2),
            "simple-change": new_api_request(content=f"{grid_id} U3"),
        }
        for path, body in requests.items():
            answer = await client.post(f"/mj/submit/{path}", json=body)
            assert answer.status_code == 200 and answer.json()["code"] == 1, (path, answer.text)
            assert_new_api_reads_response(answer.json())
        reroll = new_api_request(taskId=grid_id, action="REROLL")  # index 0, as Go sends it
        assert (await submit(client, "change", reroll))["code"] == 1
        grid = await fetch(client, grid_id)
        custom = grid["buttons"][1]["customId"]  # U2, as new-api's plus action sends it
        pressed = await submit(client, "action", new_api_request(taskId=grid_id, customId=custom))
        assert (
            pressed["code"] == 1 and (await fetch(client, pressed["result"]))["action"] == "UPSCALE"
        )

        fetched = await client.post("/mj/task/list-by-condition", json={"ids": [grid_id]})
        [task] = fetched.json()
        assert_new_api_reads_task(task)
        assert task["properties"]["finalPrompt"] == PROMPT
    assert await credits(app.database_url, user) == 10 - 5


async def test_refusals_answer_novicezk_codes(app: InProcess, discord: FakeDiscord) -> None:
    user = await new_user(app)
    async with proxy(app, user.key) as client:
        cases = [
            ("imagine", {"prompt": "   "}, 4),  # novicezk: prompt不能为空
            ("imagine", {"prompt": "a nude fox"}, 24),
            ("change", {"taskId": "nope", "action": "UPSCALE", "index": 1}, 3),
            ("change", {"taskId": "nope", "action": "ZOOM", "index": 1}, 4),
            ("change", {"taskId": "x", "action": "UPSCALE", "index": 5}, 4),
            ("simple-change", {"content": "1320098173412546 X9"}, 4),
            ("action", {"taskId": "nope", "customId": "MJ::JOB::upsample::1::abc"}, 3),
            ("describe", {"base64": "data:image/png;base64,bm90IGFuIGltYWdl"}, 4),
            ("describe", {"base64": "not a data url"}, 4),
            ("blend", {"base64Array": [], "dimensions": "SQUARE"}, 4),
            ("modal", {"taskId": "x", "prompt": "y"}, 4),
            ("imagine", {"prompt": PROMPT, "botType": "NIJI_JOURNEY"}, 4),
        ]
        for path, body, code in cases:
            answer = await client.post(f"/mj/submit/{path}", json=body)
            assert (answer.status_code, answer.json()["code"]) == (200, code), (path, answer.text)
            assert answer.json()["description"]
        banned = (await client.post("/mj/submit/imagine", json={"prompt": "a nude fox"})).json()
        assert banned["properties"]["bannedWord"] == "nude"

        not_json = await client.post(
            "/mj/submit/imagine", content=b"{", headers={"content-type": "application/json"}
        )
        assert (not_json.status_code, not_json.json()["code"]) == (400, 4)
        huge = "data:image/png;base64," + "A" * (app.settings.max_upload_bytes * 2)
        too_large = await client.post("/mj/submit/describe", json={"base64": huge})
        assert (too_large.status_code, too_large.json()["code"]) == (413, 4)
        missing = await client.get("/mj/task/no-such-task/fetch")
        assert (missing.status_code, missing.json()["code"]) == (404, 3)
        seed = await client.get("/mj/task/no-such-task/image-seed")
        assert seed.status_code == 404
    for headers in ({}, {"mj-api-secret": "wrong"}, {"Authorization": "Bearer wrong"}):
        refused = await app.client.post(
            "/mj/submit/imagine", json={"prompt": PROMPT}, headers=headers
        )
        assert refused.status_code == 401 and refused.json()["code"] == 4
        assert set(refused.json()) == {"code", "description", "result", "properties"}
    assert await credits(app.database_url, user) == 10  # nothing refused was charged


async def test_no_credit_is_a_429_in_novicezks_shape(app: InProcess) -> None:
    user = await new_user(app, tokens=0)
    async with proxy(app, user.key) as client:
        answer = await client.post("/mj/submit/imagine", json={"prompt": PROMPT})
    assert answer.status_code == 429 and answer.json()["code"] == 4
    assert answer.json()["result"] is None


async def test_describe_a_base64_image_and_a_grid_follow_up_image_seed(
    app: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(app)
    image = "data:image/png;base64," + base64.b64encode(png(16, 16)).decode()
    async with proxy(app, user.key) as client:
        described = await submit(client, "describe", {"base64": image})
        assert described["code"] == 1
        task = await fetch(client, described["result"])
        assert task["action"] == "DESCRIBE" and task["status"] == "SUBMITTED"
        uploaded = {name: data for name, data in discord.uploads.items() if data == png(16, 16)}
        assert uploaded and discord.sent()[-1]["data"]["name"] == "describe"
        with_image = await submit(client, "imagine", {"prompt": PROMPT, "base64Array": [image]})
        assert with_image["code"] == 1
        two = await submit(client, "imagine", {"prompt": PROMPT, "base64Array": [image, image]})
        assert two["code"] == 1
        sent = discord.sent()[-1]["data"]["options"][0]["value"]
        trigger = await trigger_of(app, user, two["result"])
        urls, _, rest = sent.partition(f" <#{trigger}#>")
        assert rest == PROMPT and len(urls.split(" ")) == 2
        assert all(url.startswith("http") for url in urls.split(" "))
        six = await submit(client, "imagine", {"prompt": PROMPT, "base64Array": [image] * 6})
        assert six["code"] == 4
        seed = await client.get(f"/mj/task/{described['result']}/image-seed")
        assert seed.status_code == 200 and seed.json()["code"] == 4
        queue = (await client.get("/mj/task/queue")).json()
        mine = [described["result"], with_image["result"], two["result"]]
        assert [t["id"] for t in queue] == mine
        listed = (await client.get("/mj/task/list")).json()
        assert [t["id"] for t in listed] == mine[::-1]


async def test_a_job_discord_refuses_is_code_9_and_refunded_once(
    app: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(app)
    async with proxy(app, user.key) as client:
        submitted = await submit(client, "imagine", {"prompt": PROMPT})
        trigger = await trigger_of(app, user, submitted["result"])
        await listener(app, discord, "error", trigger, wording="(Stopped)")
        await listener(app, discord, "error", trigger, wording="(Stopped)")  # delivered twice
        task = await fetch(client, submitted["result"])
    assert task["status"] == "FAILURE" and task["failReason"] and task["progress"] == ""
    assert await credits(app.database_url, user) == 10
    kinds = [k.value for k in await ledger_kinds(app.database_url, user)]
    assert kinds.count("refund") == 1


async def test_a_path_parameter_holding_a_newline_gets_each_surfaces_own_404(
    app: InProcess,
) -> None:
    user = await new_user(app)
    headers = user.headers | {"mj-api-secret": user.key}
    for path in ("/mj/task/a%0Ab/fetch", "/v1/api/trigger/task/a%0Ab"):
        answer = await app.client.get(path, headers=headers)
        assert answer.status_code == 404 and answer.headers["content-type"] == "application/json"

"""The clients people already run, unchanged: niehao610's flow and yokonsan's README
examples (with an app key, which mjcore requires), and the bodies upstream accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..e2e import User, credits, new_user, wait_for
from ..fakes.discord import FakeDiscord
from ..inprocess import InProcess, listening

API = "/v1/api/trigger"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord(midjourney=True, heartbeat_interval_ms=500) as fake:
        yield fake
        assert fake.bot.errors == []


@pytest.fixture
async def app(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[InProcess]:
    async with listening(fake, tmp_path) as running:
        yield running


def _niehao_headers(user: User) -> dict[str, str]:
    """niehao's API_AUTH_README client: Bearer key and a JSON content type."""
    return {"Authorization": user.headers["Authorization"], "Content-Type": "application/json"}


async def _poll_task(app: InProcess, user: User, task_id: str) -> dict[str, Any]:
    """niehao clients poll GET /task/{result} until the status is SUCCESS or FAILURE."""
    return await wait_for(
        app.client, user, task_id, lambda t: t["status"] in ("SUCCESS", "FAILURE")
    )


async def test_niehaos_client_flow(app: InProcess, fake: FakeDiscord) -> None:
    user = await new_user(app.database_url, 10)
    headers = _niehao_headers(user)
    imagine = await app.client.post(
        f"{API}/imagine",
        json={"prompt": "a beautiful sunset over the ocean", "picurl": None},
        headers=headers,
    )
    body = imagine.json()
    assert imagine.status_code == 200 and body["code"] == 0 and body["message"] == "success"
    assert body["trigger_type"] == "generate"

    grid = await _poll_task(app, user, body["result"])
    assert grid["status"] == "SUCCESS" and grid["imageUrl"]
    buttons = grid["buttons"]
    upscale = await app.client.post(
        f"{API}/upscale",
        json={
            "index": 1,
            "msg_id": int(buttons["msg_id"]),  # niehao's /task gave a JSON number
            "msg_hash": buttons["msg_hash"],
            "trigger_id": body["result"],  # niehao sends the imagine's task id here
        },
        headers=headers,
    )
    up = upscale.json()
    assert upscale.status_code == 200 and up["code"] == 0 and up["trigger_type"] == "upscale"
    assert up["trigger_id"] == body["trigger_id"]

    await _poll_task(app, user, up["result"])
    result = (await app.client.get(f"{API}/result/{up['result']}", headers=headers)).json()
    assert result["code"] == 0 and result["data"]["task_status"] == "FINISH"
    assert result["data"]["file_url"].startswith("http")
    queue = (await app.client.get(f"{API}/queue/status", headers=headers)).json()
    assert queue["code"] == 0
    assert queue["data"]["max_concur_size"] == 20 and queue["data"]["concur_queue_size"] == 0
    assert await credits(app.database_url, user) == 8


def _msg_hash(filename: str) -> str:
    """yokonsan's README: attachments[0].filename.split("_")[-1].split(".")[0]."""
    return filename.split("_")[-1].split(".")[0]


async def test_yokonsans_readme_examples(app: InProcess, fake: FakeDiscord) -> None:
    user = await new_user(app.database_url, 20)
    headers = {"accept": "application/json", "Content-Type": "application/json"} | user.headers

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await app.client.post(f"{API}/{path}", json=body, headers=headers)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return await _poll_task(app, user, answer["task_id"])

    def callback_fields(task: dict[str, Any]) -> dict[str, Any]:
        """What a yokonsan client reads from its end callback: id, hash, trigger_id."""
        message = fake.get_message(task["msg_id"])
        assert message is not None
        filename = message["attachments"][0]["filename"]
        return {"msg_id": task["msg_id"], "msg_hash": _msg_hash(filename)} | {
            "trigger_id": task["trigger_id"]
        }

    grid = await post("imagine", {"prompt": "a cute cat"})
    await post("imagine", {"prompt": "a cute cat", "picurl": "https://xxxxxx/xxxxxxxxxxxx.jpg"})
    from_grid = callback_fields(grid)
    upscaled = await post("upscale", {"index": 1} | from_grid)
    await post("variation", {"index": 2} | from_grid)
    from_upscale = callback_fields(upscaled)
    for solo in ("solo_variation", "solo_low_variation", "solo_high_variation"):
        await post(solo, {"index": 1} | from_upscale)  # "index": 1, unused
    await post("zoomout", from_upscale | {"zoomout": 50})
    await post("expand", from_upscale | {"direction": "up"})

    tasks = (await app.client.get(f"{API}/tasks?limit=100", headers=headers)).json()["data"]
    assert [t["status"] for t in tasks] == ["SUCCESS"] * 9
    assert await credits(app.database_url, user) == 11


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("imagine", {"prompt": "a fox", "picurl": ""}),
        ("imagine", {"prompt": "a fox", "extra": {"unknown": True}, "notify": None}),
        ("upscale", {"index": "1"}),
        ("variation", {"index": 2.0}),
        ("zoomout", {"zoomout": "50"}),
        ("expand", {"direction": "up", "index": "1", "whatever": 1}),
        ("reset", {"trigger_id_is_not_needed": 1}),
    ],
)
async def test_bodies_upstream_accepts_are_accepted(
    app: InProcess, fake: FakeDiscord, path: str, body: dict[str, Any]
) -> None:
    user = await new_user(app.database_url, 10)
    if path != "imagine":
        first = await app.client.post(
            f"{API}/imagine", json={"prompt": "a grid"}, headers=user.headers
        )
        grid = await _poll_task(app, user, first.json()["task_id"])
        # yokonsan's triple, with the ids as JSON numbers as its listener reports them
        body = {
            "msg_id": int(grid["msg_id"]),
            "msg_hash": grid["msg_hash"],
            "trigger_id": int(grid["trigger_id"]),
        } | body
    response = await app.client.post(f"{API}/{path}", json=body, headers=user.headers)

    assert response.status_code == 200, response.text
    assert response.json()["code"] == 0
    done = await _poll_task(app, user, response.json()["task_id"])
    assert done["status"] == "SUCCESS"

"""Midjourney end to end: the real server under uvicorn, a fake Discord on loopback."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
import pytest

from ..e2e import CALLBACK_SECRET, User, new_user, wait_for
from ..fakes.discord import GUILD, FakeDiscord, listener_event
from ..fakes.images import png
from ..inprocess import InProcess
from ..support import MIDJOURNEY_WORDS

API = "/v1/api/trigger"
GRID_ID = 1112838593312997377  # above 2**53: must survive as a string


def _done(task: dict[str, Any]) -> bool:
    return task["status"] in ("SUCCESS", "FAILURE")


async def imagine(
    client: httpx.AsyncClient, user: User, prompt: str = "a red fox"
) -> dict[str, Any]:
    response = await client.post(f"{API}/imagine", json={"prompt": prompt}, headers=user.headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def callback(client: httpx.AsyncClient, event: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        f"{API}/midjourney/result", json=event, headers={"X-Callback-Secret": CALLBACK_SECRET}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def finished_grid(
    client: httpx.AsyncClient, discord: FakeDiscord, user: User, message_id: int = GRID_ID
) -> dict[str, Any]:
    """Imagine, then report the grid as done the way the listener would."""
    accepted = await imagine(client, user)
    grid_hash = str(uuid.uuid4())
    content = f"**<#{accepted['trigger_id']}#>a red fox** - <@1093106715702083594> (fast)"
    event = listener_event(
        discord, "end", accepted["trigger_id"], message_id, content, msg_hash=grid_hash
    )
    await callback(client, event)
    return await wait_for(client, user, accepted["task_id"], _done)


async def test_imagine_sends_the_interaction_with_the_trigger_after_the_picurl(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(served.database_url)

    response = await client.post(
        f"{API}/imagine",
        json={"prompt": "a red fox --ar 16:9", "picurl": "https://img.example/cat.png"},
        headers=user.headers,
    )

    body = response.json()
    assert response.status_code == 200
    assert body["code"] == 0 and body["message"] == "success"
    assert body["trigger_type"] == "generate" and body["result"] == body["task_id"]
    trigger = body["trigger_id"]
    assert trigger.isdigit()
    [sent] = [i for i in discord.sent() if f"<#{trigger}#>" in str(i)]
    assert sent["type"] == 2 and sent["guild_id"] == GUILD
    assert sent["application_id"] == "936929561302675456"
    assert sent["data"]["name"] == "imagine" and sent["data"]["id"] == "938956540159881230"
    assert sent["data"]["options"][0]["value"] == (
        f"https://img.example/cat.png <#{trigger}#>a red fox --ar 16:9"
    )
    assert discord.bad_auth == 0
    task = (await client.get(f"{API}/task/{body['task_id']}", headers=user.headers)).json()
    assert task["status"] == "SUBMITTED" and task["trigger_type"] == "generate"


async def test_the_full_lifecycle_start_generating_end(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(served.database_url)
    accepted = await imagine(client, user)
    trigger, task_id = accepted["trigger_id"], accepted["task_id"]
    prefix = f"**<#{trigger}#>a red fox** - <@1093106715702083594>"
    grid_hash = "600f88ff-2147-40ad-83e4-50992c96aadb"

    await callback(
        client,
        listener_event(
            discord, "start", trigger, 1112838432968949790, f"{prefix} (Waiting to start)"
        ),
    )
    started = await wait_for(client, user, task_id, lambda t: t["status"] == "IN_PROGRESS")
    await callback(
        client,
        listener_event(
            discord, "generating", trigger, 1112838432968949790, f"{prefix} (31%) (fast)"
        ),
    )
    generating = await wait_for(client, user, task_id, lambda t: t["progress"] == 31)
    answer = await callback(
        client,
        listener_event(discord, "end", trigger, GRID_ID, f"{prefix} (fast)", msg_hash=grid_hash),
    )
    done = await wait_for(client, user, task_id, _done)

    assert started["progress"] == 0 and generating["status"] == "IN_PROGRESS"
    assert answer == {"message": "success"}
    assert done["status"] == "SUCCESS" and done["progress"] == 100
    assert done["msg_id"] == str(GRID_ID) and isinstance(done["msg_id"], str)
    assert done["msg_hash"] == grid_hash
    assert done["image_url"].startswith(f"{served.url}/images/")
    image = await client.get(done["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == discord.cdn_image
    assert done["started_at"] <= done["finished_at"]


async def test_duplicate_and_late_events_change_nothing(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(served.database_url)
    grid = await finished_grid(client, discord, user)
    trigger = grid["trigger_id"]
    content = f"**<#{trigger}#>a red fox** - <@1> (fast)"

    again = await callback(
        client,
        listener_event(discord, "end", trigger, GRID_ID + 7, content, msg_hash=str(uuid.uuid4())),
    )
    late = await callback(
        client, listener_event(discord, "generating", trigger, 5, f"{content} (50%)")
    )
    error = await callback(client, listener_event(discord, "error", trigger, 6, "(Stopped)"))

    assert again == late == error == {"message": "unchanged"}
    after = (await client.get(f"{API}/task/{grid['task_id']}", headers=user.headers)).json()
    assert after == grid


async def test_unknown_trigger_is_ignored(client: httpx.AsyncClient, discord: FakeDiscord) -> None:
    event = listener_event(discord, "end", "9999999999999999", 1, "**<#9999999999999999#>x**")
    assert await callback(client, event) == {"message": "ignored"}


async def test_upscale_by_task_id_presses_the_upsample_button(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(served.database_url)
    grid = await finished_grid(client, discord, user)

    response = await client.post(
        f"{API}/upscale", json={"task_id": grid["task_id"], "index": 2}, headers=user.headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["trigger_type"] == "upscale" and body["trigger_id"] == grid["trigger_id"]
    pressed = discord.sent()[-1]
    assert pressed["type"] == 3 and pressed["message_flags"] == 0
    assert pressed["message_id"] == grid["msg_id"]
    assert pressed["data"] == {
        "component_type": 2,
        "custom_id": f"MJ::JOB::upsample::2::{grid['msg_hash']}",
    }
    task = (await client.get(f"{API}/task/{body['task_id']}", headers=user.headers)).json()
    assert task["parent_task_id"] == grid["task_id"] and task["index"] == 2


@pytest.mark.parametrize(
    ("endpoint", "extra", "expected"),
    [
        ("upscale", {"index": 4}, "MJ::JOB::upsample::4::{h}"),
        ("variation", {"index": 3}, "MJ::JOB::variation::3::{h}"),
        ("reset", {}, "MJ::JOB::reroll::0::{h}::SOLO"),
        ("solo_variation", {}, "MJ::JOB::variation::1::{h}::SOLO"),
        ("solo_low_variation", {"index": 1}, "MJ::JOB::low_variation::1::{h}::SOLO"),
        ("solo_high_variation", {}, "MJ::JOB::high_variation::1::{h}::SOLO"),
        ("expand", {"direction": "left"}, "MJ::JOB::pan_left::1::{h}::SOLO"),
        ("expand", {"direction": "down"}, "MJ::JOB::pan_down::1::{h}::SOLO"),
        ("zoomout", {"zoomout": 50}, "MJ::Outpaint::50::1::{h}::SOLO"),
        ("zoomout", {"zoomout": 75}, "MJ::Outpaint::75::1::{h}::SOLO"),
    ],
)
@pytest.mark.parametrize("form", ["task_id", "yokonsan"])
async def test_every_button_sends_midjourneys_custom_id(
    client: httpx.AsyncClient,
    served: InProcess,
    discord: FakeDiscord,
    endpoint: str,
    extra: dict[str, Any],
    expected: str,
    form: str,
) -> None:
    user = await new_user(served.database_url)
    grid = await finished_grid(client, discord, user, message_id=GRID_ID + secrets.randbelow(10**6))
    if form == "task_id":
        body = {"task_id": grid["task_id"]} | extra
    else:  # msg_id as the listener gave it: a JSON number
        body = {"msg_id": int(grid["msg_id"]), "msg_hash": grid["msg_hash"]}
        body |= {"trigger_id": grid["trigger_id"]} | extra

    response = await client.post(f"{API}/{endpoint}", json=body, headers=user.headers)

    assert response.status_code == 200, response.text
    assert response.json()["trigger_type"] == endpoint
    pressed = discord.sent()[-1]
    assert pressed["data"]["custom_id"] == expected.format(h=grid["msg_hash"])
    assert pressed["message_id"] == grid["msg_id"]


async def test_u1_and_u2_of_one_grid_are_told_apart(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(served.database_url)
    grid = await finished_grid(client, discord, user)
    trigger = grid["trigger_id"]
    ids = {}
    for index in (1, 2):
        response = await client.post(
            f"{API}/upscale",
            json={"task_id": grid["task_id"], "index": index},
            headers=user.headers,
        )
        ids[index] = response.json()["task_id"]
    hashes = {1: str(uuid.uuid4()), 2: str(uuid.uuid4())}

    for index in (2, 1):  # the second one finishes first
        content = f"**<#{trigger}#>a red fox** - Image #{index} <@1093106715702083594>"
        event = listener_event(
            discord, "end", trigger, GRID_ID + 100 + index, content, msg_hash=hashes[index]
        )
        await callback(client, event)

    for index in (1, 2):
        task = await wait_for(client, user, ids[index], _done)
        assert task["msg_hash"] == hashes[index]
        assert task["msg_id"] == str(GRID_ID + 100 + index)


async def test_upload_describe_and_its_text_answer(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(served.database_url)
    image = png(32, 32)

    uploaded = await client.post(
        f"{API}/upload", files={"file": ("cat.png", image, "image/png")}, headers=user.headers
    )
    body = uploaded.json()
    assert uploaded.status_code == 200, uploaded.text
    trigger, name = body["trigger_id"], body["upload_filename"]
    assert name.endswith(f"/{trigger}.png") and discord.uploads[name] == image

    described = await client.post(
        f"{API}/describe",
        json={"upload_filename": name, "trigger_id": trigger},
        headers=user.headers,
    )
    assert described.status_code == 200, described.text
    sent = discord.sent()[-1]
    assert sent["data"]["name"] == "describe"
    assert sent["data"]["attachments"] == [
        {"id": "0", "filename": f"{trigger}.png", "uploaded_filename": name}
    ]
    assert sent["data"]["options"] == [{"type": 11, "name": "image", "value": 0}]

    text = {
        "type": "text",
        "id": 1112838593312997999,
        "content": "",
        "attachments": [],
        "embeds": [
            {
                "type": "rich",
                "description": "1️⃣ a fox in snow --ar 1:1\n\n2️⃣ a red fox\n\n"
                "3️⃣ fox, oil painting\n\n4️⃣ a small fox",
                "image": {"url": discord.cdn(f"{trigger}.png"), "proxy_url": "x"},
            }
        ],
        "trigger_id": trigger,
    }
    assert await callback(client, text) == {"message": "success"}
    task = await wait_for(client, user, described.json()["task_id"], _done)
    assert task["status"] == "SUCCESS" and task["trigger_type"] == "describe"
    assert task["prompts"] == [
        "a fox in snow --ar 1:1",
        "a red fox",
        "fox, oil painting",
        "a small fox",
    ]


async def test_message_posts_an_upload_and_returns_its_url(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(served.database_url)
    uploaded = (
        await client.post(
            f"{API}/upload", files={"file": ("a.png", png(), "image/png")}, headers=user.headers
        )
    ).json()

    response = await client.post(
        f"{API}/message",
        json={"upload_filename": uploaded["upload_filename"]},
        headers=user.headers,
    )

    name = uploaded["upload_filename"].rsplit("/", 1)[-1]
    assert response.status_code == 200
    assert response.json() == {"message": "success", "picurl": discord.cdn(name)}
    assert (
        discord.messages[-1]["attachments"][0]["uploaded_filename"] == uploaded["upload_filename"]
    )


async def test_uploads_must_be_images_of_bounded_size(
    client: httpx.AsyncClient, served: InProcess
) -> None:
    user = await new_user(served.database_url)

    text = await client.post(
        f"{API}/upload",
        files={"file": ("a.png", b"not an image", "image/png")},
        headers=user.headers,
    )
    huge = await client.post(
        f"{API}/upload",
        files={"file": ("a.png", png() + b"\0" * (11 * 1024 * 1024), "image/png")},
        headers=user.headers,
    )
    missing = await client.post(f"{API}/upload", data={"x": "1"}, headers=user.headers)

    assert text.status_code == 400 and text.json()["code"] == 13
    assert huge.status_code == 413
    assert missing.status_code == 400 and missing.json()["code"] == 13


@pytest.mark.parametrize(
    "prompt",
    MIDJOURNEY_WORDS,
)
async def test_prompts_in_midjourneys_words_finish_through_the_http_callback(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord, prompt: str
) -> None:
    """yokonsan's bot reports every edit as ``generating`` and every other message as
    ``end``; the wording around the prompt, not the prompt, says which job it is."""
    user = await new_user(served.database_url)
    accepted = await imagine(client, user, prompt)
    trigger = accepted["trigger_id"]
    head = f"**<#{trigger}#>{prompt}**"
    start = listener_event(discord, "start", trigger, 3001, f"{head} - <@1> (Waiting to start)")
    edit = listener_event(discord, "generating", trigger, 3001, f"{head} - <@1> (31%) (fast)")
    end = listener_event(
        discord, "end", trigger, 3002, f"{head} - <@1> (fast)", msg_hash=str(uuid.uuid4())
    )
    for event in (start, edit, end):
        await callback(client, event)
    grid = await wait_for(client, user, accepted["task_id"], _done)
    u2 = await client.post(
        f"{API}/upscale", json={"task_id": grid["task_id"], "index": 2}, headers=user.headers
    )
    upscaled = listener_event(
        discord, "end", trigger, 3003, f"{head} - Image #2 <@1>", msg_hash=str(uuid.uuid4())
    )
    await callback(client, upscaled)
    done = await wait_for(client, user, u2.json()["task_id"], _done)

    assert (grid["status"], done["status"]) == ("SUCCESS", "SUCCESS")


async def test_every_request_to_discord_carried_the_user_token(discord: FakeDiscord) -> None:
    # the fake counts requests whose Authorization is not TOKEN (it answers them 401)
    assert len(discord.sent()) > 20 and discord.bad_auth == 0


async def test_a_malformed_multipart_body_is_400(
    client: httpx.AsyncClient, served: InProcess
) -> None:
    user = await new_user(served.database_url)
    for content_type in ("multipart/form-data", "multipart/form-data; boundary=x", "text/plain"):
        response = await client.post(
            f"{API}/upload",
            content=b"--x\r\nnonsense",
            headers=user.headers | {"Content-Type": content_type},
        )
        assert (content_type, response.status_code) == (content_type, 400)
        assert response.json()["code"] == 13

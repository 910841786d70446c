"""The trigger API's contract at the edge: auth, prices, isolation, and bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from entrypoints.bootstrap import open_store
from mjcore.clock import system_clock
from mjcore.ledger import EntryKind
from mjcore.services import accounts

from ..e2e import CALLBACK_SECRET, User, credits, ledger_kinds, ledger_ok, new_user
from ..fakes.discord import FakeDiscord
from ..fakes.images import png
from ..inprocess import InProcess
from .test_trigger_lifecycle import API, finished_grid

CONSUMING = [
    "imagine",
    "upscale",
    "variation",
    "reset",
    "describe",
    "solo_variation",
    "solo_low_variation",
    "solo_high_variation",
    "expand",
    "zoomout",
]
FREE = ["upload", "message", "queue/release", "task", "tasks", "result", "queue/status"]


async def _upload(client: httpx.AsyncClient, user: User) -> dict[str, Any]:
    response = await client.post(
        f"{API}/upload", files={"file": ("a.png", png(), "image/png")}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def call(
    client: httpx.AsyncClient, endpoint: str, user: User | None, grid: dict[str, Any], **kw: Any
) -> httpx.Response:
    """One valid request to ``endpoint`` (with ``user``'s key, or the headers in ``kw``)."""
    headers = kw.pop("headers", None) or (user.headers if user else {})
    if endpoint in ("task", "result"):
        return await client.get(f"{API}/{endpoint}/{grid['task_id']}", headers=headers)
    if endpoint in ("tasks", "queue/status"):
        return await client.get(f"{API}/{endpoint}", headers=headers)
    if endpoint == "upload":
        files = {"file": ("a.png", png(), "image/png")}
        return await client.post(f"{API}/upload", files=files, headers=headers)
    body: dict[str, Any] = {"task_id": grid["task_id"]}
    if endpoint == "imagine":
        body = {"prompt": "a fox"}
    elif endpoint in ("upscale", "variation"):
        body["index"] = 1
    elif endpoint == "expand":
        body["direction"] = "up"
    elif endpoint == "zoomout":
        body["zoomout"] = 50
    elif endpoint in ("describe", "message"):
        up = grid["upload"]
        body = {"upload_filename": up["upload_filename"]}
        if endpoint == "describe":
            body["trigger_id"] = up["trigger_id"]
    elif endpoint == "queue/release":
        body = {"trigger_id": grid["trigger_id"]}
    return await client.post(f"{API}/{endpoint}", json=body, headers=headers)


@pytest.fixture
async def owner(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord
) -> tuple[User, dict[str, Any]]:
    """A user with 30 credits left after one finished grid and one upload."""
    user = await new_user(served.database_url, 31)
    grid = await finished_grid(client, discord, user)
    return user, grid | {"upload": await _upload(client, user)}


@pytest.mark.parametrize("endpoint", CONSUMING + FREE)
async def test_every_endpoint_wants_a_valid_key_of_an_active_account(
    client: httpx.AsyncClient, served: InProcess, owner: tuple[User, dict[str, Any]], endpoint: str
) -> None:
    user, grid = owner
    disabled = await new_user(served.database_url)
    deleted = await new_user(served.database_url)
    store = await open_store(served.database_url)
    try:
        await accounts.set_disabled(store, system_clock, disabled.name, True)
        await accounts.delete_account(store, system_clock, deleted.name)
    finally:
        await store.close()

    cases = {
        "none": ({}, 401, "Not authenticated"),
        "bare bearer": ({"Authorization": "Bearer"}, 401, "Not authenticated"),
        "two tokens": ({"Authorization": "Bearer a b"}, 401, "Not authenticated"),
        "basic": ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "Not authenticated"),
        "unknown": ({"Authorization": "Bearer nope"}, 403, "Invalid token or expired token."),
        "disabled": (disabled.headers, 403, "User not found."),
        "deleted": (deleted.headers, 403, "User not found."),
    }
    for name, (headers, status, detail) in cases.items():
        response = await call(client, endpoint, None, grid, headers=headers or {"X-No": "auth"})
        if endpoint == "queue/release" and status == 401:
            # yokonsan's listener releases with no key: 200, and nothing changes
            expected = {"message": "success", "trigger_id": grid["trigger_id"], "released": 0}
            assert response.status_code == 200 and response.json().items() >= expected.items()
            continue
        assert (name, response.status_code, response.json()) == (name, status, {"detail": detail})
    assert await credits(served.database_url, user) == 30


@pytest.mark.parametrize("endpoint", CONSUMING)
async def test_consuming_endpoints_cost_one_credit(
    client: httpx.AsyncClient, served: InProcess, owner: tuple[User, dict[str, Any]], endpoint: str
) -> None:
    user, grid = owner
    before = await ledger_kinds(served.database_url, user)

    response = await call(client, endpoint, user, grid)

    assert response.status_code == 200, response.text
    assert response.json()["trigger_type"] == ("generate" if endpoint == "imagine" else endpoint)
    assert await credits(served.database_url, user) == 29
    assert await ledger_kinds(served.database_url, user) == [*before, EntryKind.DEBIT]


@pytest.mark.parametrize("endpoint", FREE)
async def test_free_endpoints_never_charge(
    client: httpx.AsyncClient, served: InProcess, owner: tuple[User, dict[str, Any]], endpoint: str
) -> None:
    user, grid = owner
    before = await ledger_kinds(served.database_url, user)

    response = await call(client, endpoint, user, grid)

    assert response.status_code == 200, response.text
    assert await credits(served.database_url, user) == 30
    assert await ledger_kinds(served.database_url, user) == before


async def test_an_empty_balance_gets_the_seeds_429_and_free_endpoints_still_work(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(served.database_url, 1)
    grid = await finished_grid(client, discord, user)
    grid |= {"upload": await _upload(client, user)}
    tasks_before = (await client.get(f"{API}/tasks", headers=user.headers)).json()["total"]

    for endpoint in CONSUMING:
        response = await call(client, endpoint, user, grid)
        assert (endpoint, response.status_code, response.json()) == (
            endpoint,
            429,
            {"detail": "Token limit exceeded. Please contact administrator."},
        )
    for endpoint in FREE:
        assert (await call(client, endpoint, user, grid)).status_code == 200

    tasks_after = (await client.get(f"{API}/tasks", headers=user.headers)).json()["total"]
    assert tasks_after == tasks_before  # a refused job leaves no task
    assert await ledger_kinds(served.database_url, user) == [EntryKind.GRANT, EntryKind.DEBIT]


async def test_tasks_are_never_shown_or_used_across_accounts(
    client: httpx.AsyncClient, served: InProcess, owner: tuple[User, dict[str, Any]]
) -> None:
    alice, grid = owner
    bob = await new_user(served.database_url)

    peek = await client.get(f"{API}/task/{grid['task_id']}", headers=bob.headers)
    listed = (await client.get(f"{API}/tasks?limit=100", headers=bob.headers)).json()
    by_id = await client.post(
        f"{API}/upscale", json={"task_id": grid["task_id"], "index": 1}, headers=bob.headers
    )
    triple = {"msg_id": grid["msg_id"], "msg_hash": grid["msg_hash"]}
    by_msg = await client.post(
        f"{API}/upscale",
        json=triple | {"trigger_id": grid["trigger_id"], "index": 1},
        headers=bob.headers,
    )
    described = await client.post(
        f"{API}/describe",
        json={
            "upload_filename": grid["upload"]["upload_filename"],
            "trigger_id": grid["upload"]["trigger_id"],
        },
        headers=alice.headers,
    )
    stolen = await client.post(
        f"{API}/describe",
        json={
            "upload_filename": grid["upload"]["upload_filename"],
            "trigger_id": grid["upload"]["trigger_id"],
        },
        headers=bob.headers,
    )

    assert peek.status_code == 404 and peek.json() == {"detail": "Task not found."}
    assert listed == {"success": True, "data": [], "total": 0}
    assert by_id.status_code == by_msg.status_code == 404
    assert described.status_code == 200 and stolen.status_code == 404
    assert await credits(served.database_url, bob) == 10
    mine = (await client.get(f"{API}/tasks", headers=alice.headers)).json()
    assert {t["task_id"] for t in mine["data"]} >= {grid["task_id"]}


async def test_task_listing_filters_and_pages(
    client: httpx.AsyncClient, served: InProcess, owner: tuple[User, dict[str, Any]]
) -> None:
    user, grid = owner
    for _ in range(3):
        await call(client, "imagine", user, grid)

    done = (await client.get(f"{API}/tasks?status=SUCCESS", headers=user.headers)).json()
    page = (await client.get(f"{API}/tasks?limit=2&offset=1", headers=user.headers)).json()
    every = (await client.get(f"{API}/tasks", headers=user.headers)).json()

    assert [t["task_id"] for t in done["data"]] == [grid["task_id"]] and done["total"] == 1
    assert page["total"] == every["total"] == 4
    assert [t["task_id"] for t in page["data"]] == [t["task_id"] for t in every["data"][1:3]]
    created = [t["created_at"] for t in every["data"]]
    assert created == sorted(created, reverse=True)


BAD_JSON_BODIES: list[tuple[str, Any]] = [
    ("imagine", "{"),
    ("imagine", []),
    ("imagine", {}),
    ("imagine", {"prompt": ""}),
    ("imagine", {"prompt": {"text": "a fox"}}),
    ("imagine", {"prompt": "x", "picurl": "ftp://x"}),
    ("imagine", {"prompt": "x", "picurl": "https://a.example/1.png https://b.example/2.png"}),
    ("imagine", {"prompt": "x" * 6001}),
    ("imagine", {"prompt": "a fox\u0000"}),
    ("imagine", {"prompt": "a fox <#1234567890123456#>"}),
    ("imagine", {"prompt": ["a fox"]}),
    ("upscale", {"task_id": "t"}),
    ("upscale", {"task_id": "t", "index": 5}),
    ("upscale", {"task_id": "t", "index": "1.5"}),
    ("upscale", {"task_id": "t", "index": "one"}),
    ("upscale", {"task_id": "t", "index": True}),
    ("upscale", {"task_id": "t", "index": 10**30}),
    ("upscale", {"task_id": "t" * 65, "index": 1}),
    ("upscale", {"index": 1, "msg_id": "1"}),
    ("upscale", {"index": 1, "msg_id": "abc", "msg_hash": "x", "trigger_id": "1"}),
    ("upscale", {"index": 1, "msg_id": "1" * 21, "msg_hash": "a" * 36, "trigger_id": "1"}),
    ("upscale", {"index": 1, "msg_id": "1", "msg_hash": "a" * 65, "trigger_id": "1"}),
    ("variation", {"task_id": None, "index": 1}),
    ("reset", {}),
    ("reset", {"task_id": ["t"]}),
    ("expand", {"task_id": "t"}),
    ("expand", {"task_id": "t", "direction": "north"}),
    ("zoomout", {"task_id": "t", "zoomout": 60}),
    ("zoomout", {"task_id": "t", "zoomout": "sixty"}),
    ("describe", {"upload_filename": "x/1.png"}),
    ("describe", {"upload_filename": "../etc/passwd", "trigger_id": "1"}),
    ("describe", {"upload_filename": "abc/2.png", "trigger_id": "1"}),
    ("message", {}),
    ("message", {"upload_filename": "no-slash"}),
    ("queue/release", {}),
    ("queue/release", {"trigger_id": [5]}),
    ("midjourney/result", {}),
    ("midjourney/result", {"type": "end"}),
    ("midjourney/result", {"type": "end", "id": "not-a-number"}),
    ("midjourney/result", {"type": "end", "id": 1, "attachments": "x"}),
    ("midjourney/result", "[1, 2]"),
]


@pytest.mark.parametrize(("endpoint", "body"), BAD_JSON_BODIES)
async def test_bad_bodies_are_400_with_code_13(
    client: httpx.AsyncClient, served: InProcess, endpoint: str, body: Any
) -> None:
    user = await new_user(served.database_url, 5)
    content = body if isinstance(body, str) else None
    listener = {"X-Callback-Secret": CALLBACK_SECRET} if endpoint.startswith("midjourney") else {}
    response = await client.post(
        f"{API}/{endpoint}",
        content=content,
        json=None if content is not None else body,
        headers=user.headers | listener | {"Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert response.json()["code"] == 13 and response.json()["detail"]
    assert await credits(served.database_url, user) == 5


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=abc", "offset=-1", "status=WRONG", "limit=1.5"]
)
async def test_bad_task_queries_are_400(
    client: httpx.AsyncClient, served: InProcess, query: str
) -> None:
    user = await new_user(served.database_url)
    response = await client.get(f"{API}/tasks?{query}", headers=user.headers)
    assert response.status_code == 400 and response.json()["code"] == 13


async def test_unknown_paths_answer_in_the_surfaces_shape(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/nothing-here")
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


async def test_the_ledger_is_consistent_after_all_of_it(served: InProcess) -> None:
    assert await ledger_ok(served.database_url)

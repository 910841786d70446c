"""``kill -9`` in the middle of a load, restart: the ledger verifies and no accepted job is lost."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from entrypoints.bootstrap import open_store
from mjcore.ports import TaskQuery
from mjcore.tasks import Task, TaskStatus

from ..e2e import CALLBACK_SECRET, new_user
from ..fakes.discord import FakeDiscord, listener_event
from ..fakes.fireworks import FakeFireworks
from ..servers import MJCORE, Served, mjcore_serve
from ..support import open_test_store, store_params, url_for

START = 1000
LOAD_S = 1.5


async def _all_tasks(database_url: str) -> list[Task]:
    store = await open_store(database_url, 2)
    try:
        async with store.unit_of_work(readonly=True) as uow:
            return list(await uow.tasks.query(TaskQuery(None, None, limit=100_000)))
    finally:
        await store.close()


async def _load(
    server: Served, discord: FakeDiscord, users: dict[str, Any], stop: asyncio.Event
) -> dict[str, Any]:
    """Consuming requests and listener callbacks until ``stop``; what was accepted."""
    seen: dict[str, Any] = {"accepted": set(), "errors": 0}
    grids: list[dict[str, Any]] = []

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

        async def imagine() -> None:
            while not stop.is_set():
                try:
                    answer = await client.post(
                        "/v1/api/trigger/imagine", json={"prompt": "a fox"}, headers=users["mj"]
                    )
                except httpx.TransportError:
                    seen["errors"] += 1
                    return
                if answer.status_code == 200:
                    seen["accepted"].add(answer.json()["task_id"])
                    grids.append(answer.json())

        async def generate() -> None:
            while not stop.is_set():
                prompt = random.choice(["a boat", "a boat", "a slow boat [hang]"])
                try:
                    answer = await client.post(
                        "/api/generate", json={"prompt": prompt}, headers=users["jwt"]
                    )
                except httpx.TransportError:
                    seen["errors"] += 1
                    return
                if answer.status_code == 200:
                    seen["accepted"].add(answer.json()["task_id"])

        async def callbacks() -> None:
            while not stop.is_set():
                if not grids:
                    await asyncio.sleep(0.01)
                    continue
                grid = grids.pop(random.randrange(len(grids)))
                trigger = grid["trigger_id"]
                content = f"**<#{trigger}#>a fox** - <@1> (fast)"
                event = listener_event(
                    discord,
                    "end",
                    trigger,
                    random.randrange(10**18),
                    content,
                    msg_hash=str(uuid.uuid4()),
                )
                try:
                    await client.post(
                        "/v1/api/trigger/midjourney/result",
                        json=event,
                        headers={"X-Callback-Secret": CALLBACK_SECRET},
                    )
                except httpx.TransportError:
                    seen["errors"] += 1
                    return

        workers = [imagine(), imagine(), generate(), generate(), generate(), callbacks()]
        await asyncio.gather(*workers)
    return seen


@pytest.mark.parametrize(
    "kind",
    [p for p in store_params() if p.id in ("sqlite", "postgres")],  # type: ignore[attr-defined]
)
async def test_a_crash_mid_load_loses_nothing(
    kind: str, discord: FakeDiscord, tmp_path: Path
) -> None:
    async with open_test_store(kind, tmp_path):
        pass  # a fresh, migrated database
    database_url = url_for(kind, tmp_path)
    with FakeFireworks() as fireworks:
        env = (
            discord.env()
            | fireworks.env()
            | {
                "MJCORE_DATABASE_URL": database_url,
                "MJCORE_MJ_CONCURRENCY": "1000",
                "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
                "MJCORE_MJ_QUEUE_SIZE": "1000",
                "MJCORE_MJ_TIMEOUT_S": "2",
                "MJCORE_MJ_SWEEP_INTERVAL_S": "0.2",
                "MJCORE_FIREWORKS_TIMEOUT_S": "1",
                "MJCORE_JWT_SECRET": "crash-test-secret-0123456789abcdef0123456789",
                "MJCORE_ADMIN_USERNAME": "crash-admin",
                "MJCORE_ADMIN_PASSWORD": "crash-admin-password",
            }
        )
        mj = await new_user(database_url, START)
        with mjcore_serve(env, tmp_path) as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                login = {"username": "painter", "password": "painter-password"}
                await client.post("/api/register", json=login)
                token = (await client.post("/api/login", json=login)).json()["token"]
                code = await client.post(
                    "/api/admin/codes",
                    json={"credits": START},
                    auth=("crash-admin", "crash-admin-password"),
                )
                headers = {"Authorization": f"Bearer {token}"}
                await client.post(
                    "/api/redeem", json={"code": code.json()["codes"][0]}, headers=headers
                )
            users = {"mj": mj.headers, "jwt": headers}

            stop = asyncio.Event()
            load = asyncio.create_task(_load(server, discord, users, stop))
            await asyncio.sleep(LOAD_S)
            os.kill(server.pid, signal.SIGKILL)  # mid-load: no shutdown of any kind
            await asyncio.sleep(0.3)
            stop.set()
            seen = await load
        at_crash = await _all_tasks(database_url)

        with mjcore_serve(env, tmp_path):
            deadline = time.monotonic() + 30
            while any(not t.status.terminal for t in await _all_tasks(database_url)):
                assert time.monotonic() < deadline, "tasks left unsettled after the restart"
                await asyncio.sleep(0.2)
        after = {t.task_id: t for t in await _all_tasks(database_url)}

    assert seen["errors"] > 0  # the kill really hit requests in flight
    assert any(not t.status.terminal for t in at_crash)  # and left work unfinished
    assert seen["accepted"] <= set(after)  # every accepted job is still there...
    assert all(t.status.terminal for t in after.values())  # ...and ended
    for task in after.values():
        assert task.refunded is (task.status is TaskStatus.FAILURE), task
    succeeded = sum(t.status is TaskStatus.SUCCESS for t in after.values())
    statuses = {s: sum(t.status is s for t in after.values()) for s in TaskStatus}
    assert statuses[TaskStatus.SUCCESS] > 0 and statuses[TaskStatus.FAILURE] > 0
    verify = await asyncio.create_subprocess_exec(
        MJCORE,
        "ledger",
        "verify",
        env={k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
        | {"MJCORE_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await verify.communicate()
    assert verify.returncode == 0, output.decode()
    store = await open_store(database_url, 2)
    try:
        async with store.unit_of_work(readonly=True) as uow:
            balances = [a.credits for a in await uow.accounts.list(10)]
    finally:
        await store.close()
    assert sum(balances) == 2 * START - succeeded  # only finished work was paid for

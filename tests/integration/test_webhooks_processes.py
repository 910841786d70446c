"""Callbacks and Idempotency-Keys across processes: ``kill -9`` before and during a
delivery, two servers on one MySQL or PostgreSQL database sharing the outbox and the keys."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from entrypoints.bootstrap import open_store
from mjcore.clock import system_clock
from mjcore.ports import Store
from mjcore.pricing import Prices
from mjcore.services import accounts, tasks
from mjcore.tasks import Provider, TaskStatus
from mjcore.webhooks import Delivery, DeliveryStatus, Hook, with_hooks

from ..e2e import CALLBACK_SECRET, GENEROUS_RATE_LIMITS, credits, new_user
from ..fakes.discord import FakeDiscord, listener_event
from ..fakes.webhooks import Receiver
from ..inprocess import polled
from ..servers import Served, mjcore_serve
from ..support import open_test_store, store_params, url_for

API = "/v1/api/trigger"
TASKS = 200


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _env(discord: FakeDiscord, database_url: str, **extra: str) -> dict[str, str]:
    return (
        discord.env()
        | GENEROUS_RATE_LIMITS
        | {
            "MJCORE_DATABASE_URL": database_url,
            "MJCORE_MJ_CONCURRENCY": "1000",
            "MJCORE_MJ_QUEUE_SIZE": "100000",
            "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
            "MJCORE_WEBHOOK_ALLOW_PRIVATE": "1",
            "MJCORE_WEBHOOK_INTERVAL_S": "0.05",
            "MJCORE_WEBHOOK_FIRST_RETRY_S": "0.2",
            "MJCORE_WEBHOOK_LAST_RETRY_S": "1",
        }
        | {f"MJCORE_{k.upper()}": v for k, v in extra.items()}
    )


async def _deliveries(database_url: str, task_id: str | None = None) -> list[Delivery]:
    store = await open_store(database_url, 2)
    try:
        async with store.unit_of_work(readonly=True) as uow:
            found = await uow.webhooks.list(task_id=task_id, statuses=None, limit=10_000)
    finally:
        await store.close()
    return list(found)


async def _succeeded_with_hook(
    client: httpx.AsyncClient, server: Served, discord: FakeDiscord, hook: str
) -> str:
    """An imagine with ``hook``, reported done through the listener callback; its task id."""
    user = await new_user(server.database_url)
    accepted = await client.post(
        f"{server.url}{API}/imagine",
        json={"prompt": "a red fox", "notify_hook": hook},
        headers=user.headers,
    )
    assert accepted.status_code == 200, accepted.text
    trigger = accepted.json()["trigger_id"]
    content = f"**<#{trigger}#>a red fox** - <@1093106715702083594> (fast)"
    event = listener_event(
        discord, "end", trigger, 1112838593312997377, content, msg_hash=str(uuid.uuid4())
    )
    done = await client.post(
        f"{server.url}{API}/midjourney/result",
        json=event,
        headers={"X-Callback-Secret": CALLBACK_SECRET},
    )
    assert done.status_code == 200, done.text
    task_id: str = accepted.json()["task_id"]
    return task_id


async def test_a_delivery_pending_at_kill_9_is_sent_after_the_restart(
    discord: FakeDiscord, receiver: Receiver, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'mjcore.db'}"
    hook = f"{receiver.url}/ok/{uuid.uuid4().hex}"
    quiet = _env(discord, database_url, webhook_interval_s="3600")  # no delivery round yet
    async with httpx.AsyncClient(timeout=30) as client:
        with mjcore_serve(quiet, tmp_path) as first:
            task_id = await _succeeded_with_hook(client, first, discord, hook)
            [waiting] = await _deliveries(database_url, task_id)
            assert (waiting.status, waiting.attempts) == (DeliveryStatus.PENDING, 0)
            os.kill(first.pid, signal.SIGKILL)

        assert receiver.seen(httpx.URL(hook).path) == []
        with mjcore_serve(_env(discord, database_url), tmp_path):
            [sent] = await polled(lambda: _deliveries(database_url, task_id), _all_ended)

    [received] = receiver.seen(httpx.URL(hook).path)
    assert received.webhook_id == sent.webhook_id
    assert received.json()["event"] == "task.succeeded"
    assert received.json()["task_id"] == task_id
    assert (sent.status, sent.attempts) == (DeliveryStatus.DELIVERED, 1)


async def test_an_attempt_in_flight_at_kill_9_is_made_again_with_the_same_id(
    discord: FakeDiscord, receiver: Receiver, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'mjcore.db'}"
    hook = f"{receiver.url}/hold/{uuid.uuid4().hex}"
    env = _env(discord, database_url, webhook_timeout_s="1")  # a claim lasts 2 × 1 + 5 s
    path = httpx.URL(hook).path
    async with httpx.AsyncClient(timeout=30) as client:
        with mjcore_serve(env, tmp_path) as first:
            task_id = await _succeeded_with_hook(client, first, discord, hook)
            await polled(lambda: _seen(receiver, path), bool)  # the receiver holds it open
            os.kill(first.pid, signal.SIGKILL)

        with mjcore_serve(env, tmp_path):
            [sent] = await polled(lambda: _deliveries(database_url, task_id), _all_ended, 30)

    first_try, second_try = receiver.seen(path)
    assert first_try.webhook_id == second_try.webhook_id == sent.webhook_id
    assert first_try.body == second_try.body
    assert (sent.status, sent.attempts) == (DeliveryStatus.DELIVERED, 2)


async def _seen(receiver: Receiver, path: str) -> list[Any]:
    return receiver.seen(path)


def _all_ended(found: list[Delivery]) -> bool:
    return bool(found) and all(d.status is not DeliveryStatus.PENDING for d in found)


# -- two servers, one database ---------------------------------------------------------------


@pytest.fixture(params=[p for p in store_params() if p.id in ("mysql", "postgres")])  # type: ignore[attr-defined]
def two_servers(
    request: pytest.FixtureRequest, discord: FakeDiscord, tmp_path: Path
) -> Iterator[list[Served]]:
    async def reset() -> None:
        async with open_test_store(request.param, tmp_path):
            pass

    asyncio.run(reset())
    env = _env(discord, url_for(request.param, tmp_path))
    with ExitStack() as stack:
        homes = [tmp_path / "a", tmp_path / "b"]
        for home in homes:
            home.mkdir()
        yield [stack.enter_context(mjcore_serve(env, home)) for home in homes]


async def _ended_task_with_hook(store: Store, account_id: int, hook: str) -> None:
    draft = tasks.draft_task(
        system_clock,
        Prices(),
        account_id=account_id,
        provider=Provider.MIDJOURNEY,
        action="imagine",
        prompt="a red fox",
        params=with_hooks({}, [Hook(hook)]),
    )
    task = await tasks.reserve_task(store, draft, started=True)
    await tasks.advance_task(store, system_clock, task.task_id, TaskStatus.SUCCESS, image_url="x")


async def test_two_servers_never_send_one_attempt_twice(
    two_servers: list[Served], receiver: Receiver
) -> None:
    database_url = two_servers[0].database_url
    prefix = f"/flaky/{uuid.uuid4().hex}"
    store = await open_store(database_url, 10)
    try:
        account = (await accounts.create_account(store, system_clock, "hooked", TASKS)).account
        for start in range(0, TASKS, 10):  # while both servers deliver
            await asyncio.gather(
                *(
                    _ended_task_with_hook(store, account.id, f"{receiver.url}{prefix}/{i}")
                    for i in range(start, start + 10)
                )
            )
    finally:
        await store.close()

    found = await polled(lambda: _deliveries(database_url), _all_200_ended)

    mine = receiver.seen(prefix)
    assert len(found) == TASKS
    assert all(d.status is DeliveryStatus.DELIVERED for d in found)
    delivered = Counter(r.webhook_id for r in mine if r.status == 200)
    assert sorted(delivered) == sorted(d.webhook_id for d in found)
    assert set(delivered.values()) == {1}  # none twice
    tries = Counter(r.webhook_id for r in mine)
    assert tries == {d.webhook_id: d.attempts for d in found}  # no attempt sent twice
    assert sum(tries.values()) > TASKS  # some receivers failed first, and got a retry
    for server in two_servers:  # both took part: each logged some of the failed attempts
        assert '"outcome": "retry"' in server.log.read_text()


def _all_200_ended(found: list[Delivery]) -> bool:
    return len(found) == TASKS and _all_ended(found)


async def test_one_idempotency_key_across_two_servers_pays_once(
    two_servers: list[Served], discord: FakeDiscord
) -> None:
    database_url = two_servers[0].database_url
    user = await new_user(database_url, tokens=10)
    headers = user.headers | {"Idempotency-Key": f"across-{uuid.uuid4().hex}"}
    before = len(discord.prompts())
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{two_servers[i % 2].url}{API}/imagine",
                    json={"prompt": "one fox, two servers"},
                    headers=headers,
                )
                for i in range(50)
            )
        )
        again = [
            await client.post(
                f"{server.url}{API}/imagine",
                json={"prompt": "one fox, two servers"},
                headers=headers,
            )
            for server in two_servers
        ]

    ok = [a for a in answers if a.status_code == 200]
    assert {a.status_code for a in answers} <= {200, 409}
    assert ok and len({a.text for a in ok}) == 1
    assert [a.text for a in again] == [ok[0].text] * 2
    assert await credits(database_url, user) == 9
    assert len(discord.prompts()) == before + 1

"""Two ``mjcore serve`` processes on one MySQL or PostgreSQL database act as one service.

Short by default; ``MJCORE_MULTIPROCESS_REQUESTS=4000`` gives the long form.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from entrypoints.bootstrap import open_store
from mjcore.services import reports
from mjcore.tasks import Provider

from ..e2e import GENEROUS_RATE_LIMITS, credits, ledger_ok, new_user
from ..fakes.discord import FakeDiscord
from ..servers import Served, mjcore_serve
from ..support import open_test_store, store_params, url_for

REQUESTS = int(os.environ.get("MJCORE_MULTIPROCESS_REQUESTS", "400"))
CREDITS, CONCURRENCY = 50, 5
ADMIN = ("mp-admin", "mp-admin-password")


@pytest.fixture(params=[p for p in store_params() if p.id in ("mysql", "postgres")])  # type: ignore[attr-defined]
def two_servers(
    request: pytest.FixtureRequest, discord: FakeDiscord, tmp_path: Path
) -> Iterator[list[Served]]:
    async def reset() -> None:
        async with open_test_store(request.param, tmp_path):
            pass

    asyncio.run(reset())
    env = (
        discord.env()
        | {
            "MJCORE_DATABASE_URL": url_for(request.param, tmp_path),
            "MJCORE_MJ_CONCURRENCY": str(CONCURRENCY),
            "MJCORE_MJ_QUEUE_SIZE": "100000",
            "MJCORE_ADMIN_USERNAME": ADMIN[0],
            "MJCORE_ADMIN_PASSWORD": ADMIN[1],
            "MJCORE_JWT_SECRET": "multi-process-shared-secret-0123456789abcdef",
        }
        | GENEROUS_RATE_LIMITS
    )
    with ExitStack() as stack:
        homes = [tmp_path / "a", tmp_path / "b"]
        for home in homes:
            home.mkdir()
        yield [stack.enter_context(mjcore_serve(env, home)) for home in homes]


async def _holding(database_url: str) -> int:
    store = await open_store(database_url, 2)
    try:
        async with store.unit_of_work(readonly=True) as uow:
            return await uow.tasks.count_holding(Provider.MIDJOURNEY)
    finally:
        await store.close()


async def test_two_processes_never_overspend_and_share_one_queue(
    two_servers: list[Served], discord: FakeDiscord
) -> None:
    database_url = two_servers[0].database_url
    user = await new_user(database_url, CREDITS)
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def imagine(i: int) -> httpx.Response:
            server = two_servers[i % 2]
            return await client.post(
                f"{server.url}/v1/api/trigger/imagine",
                json={"prompt": f"fox number {i}"},
                headers=user.headers,
            )

        answers = await asyncio.gather(*(imagine(i) for i in range(REQUESTS)))

    accepted = [a.json() for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert (len(accepted), len(refused)) == (CREDITS, REQUESTS - CREDITS)
    assert await credits(database_url, user) == 0
    assert await _holding(database_url) == CONCURRENCY
    running = [a for a in accepted if a["status"] == "SUBMITTED"]
    assert len(running) == CONCURRENCY
    mine = {a["trigger_id"] for a in accepted}
    sent = [p for p in discord.prompts() if p[2 : p.index("#>")] in mine]
    assert len(sent) == CONCURRENCY  # Discord saw the global limit, not one per process
    store = await open_store(database_url, 2)
    try:
        assert (await reports.verify_ledger(store)).ok
    finally:
        await store.close()


async def test_twenty_redemptions_across_two_processes_one_wins(
    two_servers: list[Served],
) -> None:
    basic = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    async with httpx.AsyncClient(timeout=60) as client:
        tokens = []
        for i in range(20):
            server = two_servers[i % 2]
            login = {"username": f"racer{i}", "password": "racer-password"}
            await client.post(f"{server.url}/api/register", json=login)
            answer = await client.post(f"{server.url}/api/login", json=login)
            tokens.append(answer.json()["token"])
        issued = await client.post(
            f"{two_servers[0].url}/api/admin/codes",
            json={"credits": 9, "count": 1},
            headers={"Authorization": f"Basic {basic}"},
        )
        [code] = issued.json()["codes"]

        answers = await asyncio.gather(
            *(
                client.post(
                    f"{two_servers[i % 2].url}/api/redeem",
                    json={"code": code},
                    headers={"Authorization": f"Bearer {token}"},
                )
                for i, token in enumerate(tokens)
            )
        )

    assert sorted(a.status_code for a in answers) == [200] + [400] * 19
    assert await ledger_ok(two_servers[0].database_url)

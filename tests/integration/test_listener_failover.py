"""Two servers, one listener: kill -9 the one holding the lease mid-job; the other takes
over within the lease period and the job still ends SUCCESS."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import httpx

from entrypoints.bootstrap import open_store
from mjcore.clock import system_clock
from mjcore.services.leases import Lease

from ..e2e import credits, new_user, wait_for
from ..fakes.discord import CHANNEL, FakeDiscord
from ..servers import MJCORE, mjcore_serve

LEASE_S = 2


async def _holder(database_url: str) -> str | None:
    store = await open_store(database_url, 2)
    try:
        lease = Lease(store, system_clock, f"discord-listener:{CHANNEL}", "probe", LEASE_S)
        return await lease.current_holder()
    finally:
        await store.close()


async def _until_held(database_url: str, not_by: str | None = None) -> str:
    async with asyncio.timeout(30):
        while True:
            holder = await _holder(database_url)
            if holder is not None and holder != not_by:
                return holder
            await asyncio.sleep(0.1)


async def test_a_standby_listener_takes_over_from_a_killed_holder(tmp_path: Path) -> None:
    with FakeDiscord(midjourney=True, heartbeat_interval_ms=500) as fake:
        env = fake.listener_env() | {
            "MJCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
            "MJCORE_LISTENER_LEASE_S": str(LEASE_S),
        }
        with mjcore_serve(env, tmp_path) as first, mjcore_serve(env, tmp_path) as second:
            database_url = first.database_url
            holder = await _until_held(database_url)
            pid = int(holder.split(":")[1])
            assert pid in (first.pid, second.pid)
            survivor = second if pid == first.pid else first
            user = await new_user(database_url, 5)
            fake.bot.pause_before_final()
            async with httpx.AsyncClient(base_url=survivor.url, timeout=30) as client:
                answer = await client.post(
                    "/v1/api/trigger/imagine", json={"prompt": "a fox"}, headers=user.headers
                )
                task_id = answer.json()["task_id"]
                await wait_for(client, user, task_id, lambda t: t["status"] == "IN_PROGRESS")

                identifies = fake.gateway.identifies
                os.kill(pid, signal.SIGKILL)  # the listener dies with its server, mid-job
                started = asyncio.get_running_loop().time()
                successor = await _until_held(database_url, not_by=holder)
                took = asyncio.get_running_loop().time() - started
                async with asyncio.timeout(30):  # the successor's discord.py identifies
                    while True:
                        if fake.gateway.identifies > identifies:
                            break
                        await asyncio.sleep(0.05)
                fake.bot.release()  # Midjourney finishes the job now
                done = await wait_for(client, user, task_id, lambda t: t["status"] != "IN_PROGRESS")

        assert int(successor.split(":")[1]) == survivor.pid
        assert took < 30
        assert done["status"] == "SUCCESS", done
        assert await credits(database_url, user) == 4
        assert fake.bot.errors == []


async def test_mjcore_listen_runs_the_listener_beside_a_server_without_one(
    tmp_path: Path,
) -> None:
    with FakeDiscord(midjourney=True, heartbeat_interval_ms=500) as fake:
        database = {"MJCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'split.db'}"}
        with mjcore_serve(fake.env() | database, tmp_path) as server:
            listen_env = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
            listener = subprocess.Popen(  # noqa: ASYNC220 (started once; waited on below)
                [MJCORE, "listen"],
                env=listen_env | fake.listener_env() | database,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            try:
                await _until_held(server.database_url)
                user = await new_user(server.database_url, 5)
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                    answer = await client.post(
                        "/v1/api/trigger/imagine", json={"prompt": "a fox"}, headers=user.headers
                    )
                    done = await wait_for(
                        client,
                        user,
                        answer.json()["task_id"],
                        lambda t: t["status"] != "SUBMITTED" and t["status"] != "IN_PROGRESS",
                    )
            finally:
                listener.send_signal(signal.SIGTERM)
                assert listener.wait(timeout=15) == 0  # a clean stop on SIGTERM
        assert done["status"] == "SUCCESS"
        assert await _holder(server.database_url) is None  # the lease was given up


def test_mjcore_listen_without_a_bot_token_says_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
    result = subprocess.run(
        [MJCORE, "listen"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "MJCORE_DISCORD_BOT_TOKEN" in result.stderr

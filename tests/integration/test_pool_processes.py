"""Two ``mjcore serve`` processes on one MySQL or PostgreSQL database share one pool of
Discord accounts: neither ever has more of an account's jobs at Discord than its
concurrency allows, counted by the fake Discord per channel."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from mjcore.clock import system_clock
from mjcore.discord_accounts import DiscordAccount, Secret
from mjcore.services import midjourney

from ..e2e import CALLBACK_SECRET, GENEROUS_RATE_LIMITS, credits, ledger_ok, new_user
from ..fakes.discord import CHANNEL, FakeDiscord, listener_event
from ..servers import Served, mjcore_serve
from ..support import open_test_store, store_params, url_for

CAPACITY = {"default": 2, "b": 3, "c": 1}
JOBS = 60


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as discord:
        yield discord


@pytest.fixture(params=[p for p in store_params() if p.id in ("mysql", "postgres")])  # type: ignore[attr-defined]
def two_servers(
    request: pytest.FixtureRequest, fake: FakeDiscord, tmp_path: Path
) -> Iterator[tuple[list[Served], dict[str, str]]]:
    channels = {"default": CHANNEL}

    async def reset_and_add_accounts() -> None:
        async with open_test_store(request.param, tmp_path) as store:
            for name in ("b", "c"):
                account = fake.add_account(name)
                channels[name] = account.channel_id
                await midjourney.add_discord_account(
                    store,
                    system_clock,
                    DiscordAccount(
                        name,
                        account.guild_id,
                        account.channel_id,
                        Secret(account.token),
                        concurrency=CAPACITY[name],
                    ),
                )

    asyncio.run(reset_and_add_accounts())
    env = (
        fake.env()
        | {
            "MJCORE_DATABASE_URL": url_for(request.param, tmp_path),
            "MJCORE_MJ_CONCURRENCY": str(CAPACITY["default"]),
            "MJCORE_MJ_QUEUE_SIZE": "1000",
            "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
        }
        | GENEROUS_RATE_LIMITS
    )
    with ExitStack() as stack:
        homes = [tmp_path / "a", tmp_path / "b"]
        for home in homes:
            home.mkdir()
        yield [stack.enter_context(mjcore_serve(env, home)) for home in homes], channels


def _trigger(interaction: dict[str, Any]) -> str:
    value: str = interaction["data"]["options"][0]["value"]
    return value[2 : value.index("#>")]


async def test_two_processes_respect_every_accounts_concurrency(
    two_servers: tuple[list[Served], dict[str, str]], fake: FakeDiscord
) -> None:
    servers, channels = two_servers
    database_url = servers[0].database_url
    user = await new_user(database_url, JOBS)
    async with httpx.AsyncClient(timeout=60) as client:

        async def imagine(i: int) -> httpx.Response:
            return await client.post(
                f"{servers[i % 2].url}/v1/api/trigger/imagine",
                json={"prompt": f"a fox, take {i}"},
                headers=user.headers,
            )

        async def end(i: int, interaction: dict[str, Any]) -> None:
            fake.finished(interaction["channel_id"])  # Discord's count first, then mjcore's
            trigger = _trigger(interaction)
            event = listener_event(
                fake,
                "end",
                trigger,
                1112838593312997377 + i,
                f"**<#{trigger}#>a fox**",
                msg_hash=f"h{i}",
            )
            answer = await client.post(
                f"{servers[i % 2].url}/v1/api/trigger/midjourney/result",
                json=event,
                headers={"X-Callback-Secret": CALLBACK_SECRET},
            )
            assert answer.status_code == 200, answer.text

        answers = await asyncio.gather(*(imagine(i) for i in range(JOBS)))
        assert [a.status_code for a in answers] == [200] * JOBS
        assert Counter(a.json()["status"] for a in answers)["SUBMITTED"] == sum(CAPACITY.values())

        ended: set[str] = set()
        while len(ended) < JOBS:  # each batch ended at once, through both servers
            fresh = [i for i in fake.sent() if _trigger(i) not in ended]
            assert fresh, f"only {len(ended)} of {JOBS} jobs reached Discord"
            ended |= {_trigger(i) for i in fresh}
            await asyncio.gather(*(end(len(ended) + n, i) for n, i in enumerate(fresh)))

    peak = {name: fake.peak[channel] for name, channel in channels.items()}
    assert peak == CAPACITY  # every account full at some point, none ever above
    assert len(fake.sent()) == JOBS
    assert await credits(database_url, user) == 0
    assert await ledger_ok(database_url)

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from ..e2e import CALLBACK_SECRET
from ..fakes.discord import FakeDiscord
from ..servers import Served, mjcore_serve


@pytest.fixture(scope="module")
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture(scope="module")
def served(discord: FakeDiscord, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One real server per module, on SQLite, talking to the fake Discord."""
    home = tmp_path_factory.mktemp("served")
    env = discord.env() | {
        "MJCORE_DATABASE_URL": f"sqlite:///{home / 'mjcore.db'}",
        "MJCORE_MJ_CONCURRENCY": "1000",
        "MJCORE_MJ_QUEUE_SIZE": "1000",
        "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
    }
    with mjcore_serve(env, home) as server:
        yield server


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        yield http

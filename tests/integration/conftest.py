from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ..e2e import CALLBACK_SECRET
from ..fakes.discord import FakeDiscord
from ..inprocess import InProcess, in_process


@pytest.fixture(scope="module")
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite database for a module's apps: migrated once (tests make their own users)."""
    return tmp_path_factory.mktemp("served")


@pytest.fixture
async def served(discord: FakeDiscord, home: Path) -> AsyncIterator[InProcess]:
    """The app in this process (its lifespan running) on SQLite, talking to the fake Discord."""
    env = discord.env() | {
        "MJCORE_MJ_CONCURRENCY": "1000",
        "MJCORE_MJ_QUEUE_SIZE": "1000",
        "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
    }
    async with in_process(env, home) as app:
        yield app


@pytest.fixture
def client(served: InProcess) -> httpx.AsyncClient:
    return served.client

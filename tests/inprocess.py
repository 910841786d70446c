"""The app in the test's own process: its lifespan running, requests through ASGITransport.

Faster than a uvicorn subprocess and the same code path from routing down; subprocesses
stay for what a process boundary is the point of (crash, several processes, the CLI).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import httpx
from attrs import frozen
from starlette.applications import Starlette

from entrypoints.app import create_app
from entrypoints.settings import Settings

from .fakes.discord import FakeDiscord

BASE_URL = "http://mjcore.test"
T = TypeVar("T")


@frozen
class InProcess:
    client: httpx.AsyncClient
    settings: Settings
    app: Starlette  # for more clients, e.g. from other addresses

    @property
    def database_url(self) -> str:
        return self.settings.database_url

    @property
    def url(self) -> str:
        return BASE_URL


@asynccontextmanager
async def in_process(env: dict[str, str], home: Path) -> AsyncIterator[InProcess]:
    """The app built from ``env`` (on a SQLite file in ``home`` unless it says otherwise)."""
    defaults = {
        "MJCORE_DATABASE_URL": f"sqlite:///{home / 'mjcore.db'}",
        "MJCORE_IMAGE_DIR": str(home / "images"),
        "MJCORE_PUBLIC_URL": BASE_URL,
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
    settings = Settings.from_env(clean | defaults | env)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=30) as http:
            yield InProcess(http, settings, app)


async def until(condition: Callable[[], bool]) -> None:
    """Poll state another thread changes (a fake's), for up to 15 s."""
    async with asyncio.timeout(15):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


async def polled(
    fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], within_s: float = 15
) -> T:
    """Fetch (e.g. from the database) until ``done`` says so, for up to ``within_s`` s; the
    last value."""
    async with asyncio.timeout(within_s):
        value = await fetch()
        while not done(value):
            await asyncio.sleep(0.05)
            value = await fetch()
    return value


@asynccontextmanager
async def listening(fake: FakeDiscord, home: Path, **settings: str) -> AsyncIterator[InProcess]:
    """The app with our own listener on, once the listener has joined the fake's gateway."""
    env = fake.listener_env() | {"MJCORE_MJ_CONCURRENCY": "20", "MJCORE_LISTENER_LEASE_S": "2"}
    env |= {f"MJCORE_{name.upper()}": value for name, value in settings.items()}
    connections = fake.gateway.connections
    async with in_process(env, home) as app:
        await until(lambda: fake.gateway.connections > connections and bool(fake.gateway.connected))
        yield app

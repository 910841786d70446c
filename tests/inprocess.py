"""The app in the test's own process: its lifespan running, requests through ASGITransport.

Faster than a uvicorn subprocess and the same code path from routing down; subprocesses
stay for what a process boundary is the point of (crash, several processes, the CLI).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from attrs import frozen
from starlette.applications import Starlette

from entrypoints.app import create_app
from entrypoints.settings import Settings

BASE_URL = "http://mjcore.test"


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

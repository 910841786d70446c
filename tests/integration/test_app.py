"""The Starlette app skeleton: lifespan runs the composition root; /healthz checks the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from adapters.memory import MemoryStore
from entrypoints.app import create_app
from entrypoints.bootstrap import bootstrap_app
from entrypoints.settings import Settings
from mjcore.ports import Store

from ..servers import mjcore_serve


async def test_healthz_answers_after_checking_the_database(store: Store, tmp_path: Path) -> None:
    settings = Settings(database_url="memory://", image_dir=str(tmp_path))
    app = create_app(settings, services=await bootstrap_app(settings, store=store))

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


class _DeadStore(MemoryStore):
    async def ping(self) -> None:
        raise ConnectionError("database is gone")


async def test_healthz_is_503_when_the_database_does_not_answer(tmp_path: Path) -> None:
    settings = Settings(database_url="memory://", image_dir=str(tmp_path))
    app = create_app(settings, services=await bootstrap_app(settings, store=_DeadStore()))

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/healthz")

    assert response.status_code == 503 and response.json() == {"status": "unavailable"}


def test_mjcore_serve_migrates_then_serves_on_sqlite(tmp_path: Path) -> None:
    with mjcore_serve({}, tmp_path) as served:  # no settings at all: ./mjcore.db
        response = httpx.get(f"{served.url}/healthz")

    assert response.json() == {"status": "ok"}
    with sqlite3.connect(tmp_path / "mjcore.db") as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version")]
    assert versions and versions[0] == 1

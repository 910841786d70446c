"""The Starlette app skeleton: lifespan runs the composition root; /healthz checks the database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from adapters.memory import MemoryStore
from entrypoints.app import create_app
from entrypoints.bootstrap import bootstrap_app
from entrypoints.settings import Settings
from mjcore.ledger import EntryKind
from mjcore.ports import Store

from ..e2e import ledger_kinds, new_user
from ..fakes.images import png
from ..inprocess import in_process
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
    lines = [json.loads(line) for line in served.log.read_text().splitlines()]  # JSON: no tty
    [said] = [line for line in lines if line["event"] == "serve.start"]
    assert said | {"timestamp": "t", "pid": 1} == {
        "event": "serve.start",
        "level": "info",
        "logger": "mjcore.server",
        "version": metadata.version("mjcore"),
        "url": served.url,
        "store": "sqlite:///./mjcore.db",
        "midjourney": "off",
        "fireworks": "off",
        "listener": "off",
        "admin": "off",
        "workers": 1,
        "metrics_dir": None,
        "timestamp": "t",
        "pid": 1,
    }
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # uvicorn's, as JSON
    with sqlite3.connect(tmp_path / "mjcore.db") as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version")]
    assert versions and versions[0] == 1


async def _get(settings: Settings, store: Store, path: str) -> httpx.Response:
    app = create_app(settings, services=await bootstrap_app(settings, store=store))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path)


async def test_readyz_is_200_with_the_database_the_migrations_and_the_providers(
    store: Store, tmp_path: Path
) -> None:
    settings = Settings(
        database_url="memory://",
        image_dir=str(tmp_path),
        fireworks_api_key="fw-key",
        discord_user_token="user-token",
        discord_guild_id="1",  # no channel: Midjourney is not configured
    )

    response = await _get(settings, store, "/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        "migrations": "current",
        "providers": {"midjourney": False, "fireworks": True, "listener": False},
    }


class _BehindStore(MemoryStore):
    async def pending_migrations(self) -> Sequence[int]:
        return (4,)


async def test_readyz_is_503_while_migrations_are_pending(tmp_path: Path) -> None:
    settings = Settings(database_url="memory://", image_dir=str(tmp_path))

    response = await _get(settings, _BehindStore(), "/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert (response.json()["database"], response.json()["migrations"]) == ("ok", "pending")


async def test_readyz_is_503_when_the_database_does_not_answer(tmp_path: Path) -> None:
    settings = Settings(database_url="memory://", image_dir=str(tmp_path))

    response = await _get(settings, _DeadStore(), "/readyz")

    assert response.status_code == 503
    body: dict[str, Any] = response.json()
    assert (body["status"], body["database"], body["migrations"]) == (
        "unavailable",
        "unavailable",
        "unknown",
    )


async def test_an_unconfigured_midjourney_is_503_code_16_and_records_nothing(
    tmp_path: Path,
) -> None:
    async with in_process({}, tmp_path) as app:  # no Discord settings at all
        user = await new_user(app.database_url, 5)
        answers = [
            await app.client.post(
                "/v1/api/trigger/imagine", json={"prompt": "a fox"}, headers=user.headers
            ),
            await app.client.post(
                "/v1/api/trigger/upload",
                files={"file": ("a.png", png(), "image/png")},
                headers=user.headers,
            ),
        ]
        listed = await app.client.get("/v1/api/trigger/tasks", headers=user.headers)

        for answer in answers:
            assert answer.status_code == 503
            assert answer.json() == {
                "detail": "Midjourney is not available on this server.",
                "code": 16,
            }
        assert listed.json()["total"] == 0
        assert await ledger_kinds(app.database_url, user) == [EntryKind.GRANT]


async def test_an_unconfigured_fireworks_is_503_and_records_nothing(tmp_path: Path) -> None:
    async with in_process({}, tmp_path) as app:  # no Fireworks key
        login = {"username": "alice", "password": "password123"}
        await app.client.post("/api/register", json=login)
        token = (await app.client.post("/api/login", json=login)).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}

        answer = await app.client.post("/api/generate", json={"prompt": "a fox"}, headers=headers)
        records = await app.client.get("/api/records", headers=headers)

    assert answer.status_code == 503
    assert answer.json() == {"error": "图片生成暂不可用 (image generation is not available)"}
    assert "MJCORE" not in answer.text
    assert records.json() == {"records": []}

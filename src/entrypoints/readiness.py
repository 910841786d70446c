"""``GET /readyz``: may this process take traffic? The database answers, its schema is the
one this version ships, and which providers are configured (reported, not required)."""

from __future__ import annotations

from attrs import define
from starlette.requests import Request
from starlette.responses import JSONResponse

from .http import Doc, Operation, answer, app_services


@define
class ProvidersOut:
    midjourney: bool  # Discord user token, guild and channel configured
    fireworks: bool  # a Fireworks API key configured
    listener: bool  # our Discord listener runs in this process


@define
class Readiness:
    status: str  # ready | unavailable
    database: str  # ok | unavailable
    migrations: str  # current | pending | unknown (the database did not answer)
    providers: ProvidersOut


async def readyz(request: Request) -> JSONResponse:
    """200 when the database answers and every shipped migration is applied, else 503."""
    services = app_services(request)
    store = services.core.store
    try:
        await store.ping()
        pending = await store.pending_migrations()
    except Exception:  # noqa: BLE001 (whatever the database says, it is not ready)
        database, migrations = "unavailable", "unknown"
    else:
        database, migrations = "ok", "pending" if pending else "current"
    ready = database == "ok" and migrations == "current"
    p = services.providers
    body = Readiness(
        "ready" if ready else "unavailable",
        database,
        migrations,
        ProvidersOut(p.midjourney, p.fireworks, p.listener),
    )
    return answer(body, 200 if ready else 503)


def readiness_route() -> Operation:
    return Operation(
        "/readyz",
        readyz,
        "GET",
        Doc(
            "Ready for traffic: database answers, migrations current; providers configured"
            " (reported, not required)",
            {200: Readiness, 503: Readiness},
        ),
    )

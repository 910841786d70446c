"""The Starlette application: factory and lifespan around the one composition root."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .bootstrap import Services, bootstrap
from .settings import Settings


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def healthz(request: Request) -> JSONResponse:
    """``{"status": "ok"}`` once the database has answered."""
    try:
        await services_of(request).store.ping()
    except Exception:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings, *, services: Services | None = None) -> Starlette:
    """Build the app. With ``services`` given (tests, embedding) the lifespan uses them."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = services is None
        app.state.services = services if services is not None else await bootstrap(settings)
        try:
            yield
        finally:
            if own:
                await app.state.services.aclose()

    return Starlette(routes=[Route("/healthz", healthz)], lifespan=lifespan)


def create_app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory``: settings from the environment."""
    return create_app(Settings.from_env(os.environ))

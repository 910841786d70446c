"""The Starlette application: factory and lifespan around the one composition root."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from attrs import define
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mjcore.services import tasks
from mjcore.services.tasks import Deadlines
from mjcore.tasks import Provider

from .bootstrap import AppServices, bootstrap_app
from .docs_page import docs_routes
from .http import Doc, Operation, app_services
from .image_api import image_routes
from .image_schema import Error
from .listener import run_listener
from .openapi import openapi_document
from .readiness import readiness_route
from .schema import Schema
from .settings import Settings
from .trigger_api import trigger_routes

log = logging.getLogger("mjcore.app")
IMAGE_HEADERS = {  # a name is never reused: a stored image never changes
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}
access_log = logging.getLogger("mjcore.access")


@define
class Health:
    status: str


async def healthz(request: Request) -> JSONResponse:
    """``{"status": "ok"}`` once the database has answered."""
    try:
        await app_services(request).core.store.ping()
    except Exception:  # noqa: BLE001 (any failure of the database is "unavailable")
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def image(request: Request) -> Response:
    """A stored image, by its unguessable name."""
    found = await app_services(request).image_store.load(request.path_params["name"])
    if found is None:
        return JSONResponse({"error": "image not found"}, status_code=404)
    # streamed from the file in chunks; the type is the stored one, never sniffed
    return FileResponse(found.path, media_type=found.content_type, headers=IMAGE_HEADERS)


def printable(text: str) -> str:
    """``text`` safe for a log line: control and other unprintable characters (CR, LF, ESC,
    U+2028…) and ``%`` itself percent-encoded, so a path cannot forge lines or colours."""
    if text.isprintable() and "%" not in text:
        return text
    return "".join(
        c
        if c.isprintable() and c != "%"
        else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in text
    )


class AccessLog:
    """Method, path, status, time. Never the query string or headers: they carry secrets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            method, path = printable(scope["method"]), printable(scope["path"])
            access_log.info("%s %s %d %.1fms", method, path, status, elapsed)


async def sweep(services: AppServices) -> None:
    """Settle what cannot end by itself: timed-out Midjourney jobs (refunded; waiting
    ones start) and Fireworks jobs a crashed server left unfinished."""
    await services.midjourney.sweep()
    core = services.core
    # a live server ends its own Fireworks job within the timeout; twice that is a crash
    crashed = Deadlines(
        2 * core.settings.fireworks_timeout_s, 2 * core.settings.fireworks_timeout_s
    )
    await tasks.fail_stale(core.store, core.clock, Provider.FIREWORKS, crashed)
    await services.keys.purge()  # Idempotency-Keys past their day


async def _every(interval: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``work`` every ``interval`` seconds (at once again if it says it was busy)."""
    while True:
        try:
            busy = await work()
        except Exception as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # stopping: stop, whatever
                raise asyncio.CancelledError from exc  # the driver raised on the way out
            log.exception("%s failed; retrying in %.1fs", what, interval)
            busy = False
        if not busy:
            await asyncio.sleep(interval)


def create_app(settings: Settings, *, services: AppServices | None = None) -> Starlette:
    """Build the app. With ``services`` given (tests, embedding) the lifespan uses them."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = services is None
        running = services if services is not None else await bootstrap_app(settings)
        app.state.services = running
        background = [
            asyncio.create_task(
                _every(settings.mj_sweep_interval_s, lambda: sweep(running), "the sweep")
            ),
            asyncio.create_task(
                _every(settings.webhook_interval_s, running.webhooks.deliver_due, "webhooks")
            ),
        ]
        if running.providers.listener:
            background.append(asyncio.create_task(run_listener(running)))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            if own:
                await running.aclose()

    app = Starlette(routes=app_routes(), lifespan=lifespan)
    app.state.openapi = openapi_document(app.routes, settings.public_url)  # built once
    app.add_middleware(AccessLog)
    return app


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.openapi)


def document(public_url: str) -> dict[str, Any]:
    """The app's OpenAPI document, as ``/openapi.json`` serves it."""
    return openapi_document(app_routes(), public_url)


def app_routes() -> list[BaseRoute]:
    """Every route of the app; the documented ones make up ``/openapi.json``."""
    images: Schema = {f"image/{kind}": {} for kind in ("png", "jpeg", "webp", "gif")}
    return [
        Operation("/openapi.json", openapi, "GET", Doc("This document", {200: None})),
        Operation("/healthz", healthz, "GET", Doc("Database answers", {200: Health, 503: Health})),
        readiness_route(),
        Operation(
            "/images/{name}",
            image,
            "GET",
            Doc("A stored image", {200: None, 404: Error}, produces=images),
        ),
        trigger_routes(),
        image_routes(),
        *docs_routes(),
    ]


def create_app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory``: settings from the environment."""
    return create_app(Settings.from_env(os.environ))

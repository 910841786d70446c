"""The Starlette application: factory and lifespan around the one composition root."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

import structlog
from attrs import define
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mjcore import events
from mjcore.services import tasks
from mjcore.services.tasks import Deadlines
from mjcore.tasks import Provider

from .admin_pages import admin_routes
from .bootstrap import AppServices, bootstrap_app
from .docs_page import docs_routes
from .http import Doc, Operation, app_services
from .image_api import image_routes
from .image_schema import Error
from .listener import run_listener
from .logs import request_id
from .metrics import Metrics, counting, metrics_route
from .mj_api import mj_routes
from .openai_api import openai_routes
from .openapi import openapi_document
from .pages import shared_routes
from .readiness import readiness_route
from .schema import Schema
from .settings import Settings
from .trigger_api import trigger_routes
from .user_pages import user_routes

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


class AccessLog:
    """Gives each request its id, logs it as ``http.request`` (method, path, route,
    status, time) and counts it in the metrics by route template.

    The id is the client's ``X-Request-ID`` when valid, else a fresh one; it is sent back
    in the answer's ``X-Request-ID`` and is in every log line written while the request
    runs. Never the query string or headers: they carry secrets.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, templates: Mapping[int, str]) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = request_id(given.decode("latin-1"))
        started = time.perf_counter()
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=rid):
            self.metrics.http_in_progress.inc()
            try:
                await self.app(scope, receive, answer)
            finally:
                self.metrics.http_in_progress.dec()
                elapsed = time.perf_counter() - started
                route = self.templates.get(id(scope.get("route")), "unmatched")
                self.metrics.request_done(scope["method"], route, status, elapsed)
                access_log.info(
                    "http.request",
                    extra={
                        "method": scope["method"],  # escaped when rendered (entrypoints.logs)
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                    },
                )


def route_templates(routes: Iterable[BaseRoute], prefix: str = "") -> dict[int, str]:
    """Each route's path template (``/v1/api/trigger/task/{task_id}``), by the route's id:
    what the metrics label a request with, never its raw path."""
    templates: dict[int, str] = {}
    for route in routes:
        if isinstance(route, Mount):
            templates[id(route)] = f"{prefix}{route.path}/{{path}}"
            templates |= route_templates(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            templates[id(route)] = prefix + route.path
    return templates


async def sweep(services: AppServices) -> None:
    """Settle what cannot end by itself: timed-out Midjourney jobs (refunded; waiting
    ones start) and Fireworks jobs a crashed server left unfinished."""
    midjourney = await services.midjourney.sweep()
    core = services.core
    # a live server ends its own Fireworks job within the timeout; twice that is a crash
    crashed = Deadlines(
        2 * core.settings.fireworks_timeout_s, 2 * core.settings.fireworks_timeout_s
    )
    fireworks = await tasks.fail_stale(core.store, core.clock, Provider.FIREWORKS, crashed)
    await services.keys.purge()  # Idempotency-Keys past their day
    level = logging.INFO if midjourney or fireworks else logging.DEBUG
    events.emit(log, level, "sweep.done", midjourney=midjourney, fireworks=fireworks)


async def _every(interval: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``work`` every ``interval`` seconds (at once again if it says it was busy)."""
    while True:
        try:
            busy = await work()
        except Exception as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # stopping: stop, whatever
                raise asyncio.CancelledError from exc  # the driver raised on the way out
            log.exception(f"{what}.failed", extra={"retry_in_s": interval})
            busy = False
        if not busy:
            await asyncio.sleep(interval)


def create_app(settings: Settings, *, services: AppServices | None = None) -> Starlette:
    """Build the app. With ``services`` given (tests, embedding) the lifespan uses them."""

    metrics = Metrics.create()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = services is None
        with counting(metrics):
            running = services if services is not None else await bootstrap_app(settings)
            app.state.services = running
            background = [
                asyncio.create_task(
                    _every(settings.mj_sweep_interval_s, lambda: sweep(running), "sweep")
                ),
                asyncio.create_task(
                    _every(settings.webhook_interval_s, running.webhooks.deliver_due, "webhooks")
                ),
            ]
            # listens to the pool's channels that have a bot (none: it only looks, now and then)
            background.append(asyncio.create_task(run_listener(running)))
            if settings.mj_health_check_s:
                check = running.midjourney.check_accounts
                loop = _every(settings.mj_health_check_s, check, "pool.health_check")
                background.append(asyncio.create_task(loop))
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
    app.state.metrics = metrics
    app.add_middleware(AccessLog, metrics=metrics, templates=route_templates(app.routes))
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
        metrics_route(),
        Operation(
            "/images/{name}",
            image,
            "GET",
            Doc("A stored image", {200: None, 404: Error}, produces=images),
        ),
        trigger_routes(),
        image_routes(),
        mj_routes(),
        *openai_routes(),
        *docs_routes(),
        *shared_routes(),  # the web pages (not in /openapi.json: they answer HTML)
        *user_routes(),
        *admin_routes(),
    ]


def create_app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory``: settings from the environment."""
    return create_app(Settings.from_env(os.environ))

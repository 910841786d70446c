"""``mjcore serve`` (the app under uvicorn) and ``mjcore listen`` (the listener alone)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from contextlib import suppress

from .bootstrap import StoreUnavailable, check_driver, providers, redacted_url, version
from .settings import Settings


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def startup_line(settings: Settings, host: str, port: int, workers: int) -> str:
    """What ``serve`` says once at start-up: where, on what store, with which providers."""
    p = providers(settings)
    admin = bool(settings.admin_username and settings.admin_password)

    def on(flag: bool) -> str:
        return "on" if flag else "off"

    return (
        f"mjcore {version()} serving http://{host}:{port}"
        f" store={redacted_url(settings.database_url)}"
        f" midjourney={on(p.midjourney)} fireworks={on(p.fireworks)} listener={on(p.listener)}"
        f" admin={on(admin)} workers={workers}"
    )


def serve(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    forwarded_allow_ips: str | None = None,
) -> int:
    import uvicorn

    try:
        check_driver(settings.database_url)
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _logging(settings)
    print(startup_line(settings, host, port, workers), flush=True)
    uvicorn.run(
        "entrypoints.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        proxy_headers=True,  # X-Forwarded-For from --forwarded-allow-ips peers only
        forwarded_allow_ips=forwarded_allow_ips,  # None: uvicorn's default (127.0.0.1)
        access_log=False,  # ours (entrypoints.app.AccessLog) leaves out query strings
        # against slowloris: a bounded number of connections (more get 503), idle kept-alive
        # ones closed, request heads bounded in time and size (entrypoints.protocol)
        http="entrypoints.protocol:GuardedHttpToolsProtocol",
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keepalive_s,
        h11_max_incomplete_event_size=settings.max_header_bytes,  # if h11 is ever chosen
    )
    return 0


def listen(settings: Settings) -> int:
    """Run the Discord listener until SIGINT or SIGTERM."""
    if not (settings.discord_bot_token and settings.discord_channel_id):
        print(
            "error: the listener needs MJCORE_DISCORD_BOT_TOKEN and MJCORE_DISCORD_CHANNEL_ID",
            file=sys.stderr,
        )
        return 1
    _logging(settings)
    asyncio.run(_listen(settings))
    return 0


async def _listen(settings: Settings) -> None:
    from .bootstrap import bootstrap_app
    from .listener import run_listener

    services = await bootstrap_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    listening = asyncio.create_task(run_listener(services))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([listening, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (listening, stopping):
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        await services.aclose()

"""``mjcore serve`` (the app under uvicorn) and ``mjcore listen`` (the listener alone)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from contextlib import suppress

from .settings import Settings


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    forwarded_allow_ips: str | None = None,
) -> int:
    import uvicorn

    _logging(settings)
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

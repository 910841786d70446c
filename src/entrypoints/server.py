"""``mjcore serve`` (the app under uvicorn) and ``mjcore listen`` (the listener alone)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from attrs import evolve

from .bootstrap import (
    DEMO_USER,
    DemoRefused,
    StoreUnavailable,
    check_demo,
    check_driver,
    providers,
    redacted_url,
    version,
)
from .logs import configure_logging, logging_config
from .metrics import MULTIPROCESS_DIR, bury_dead_workers, pid_alive, prepare_directory
from .settings import Settings

log = logging.getLogger("mjcore.server")
BURY_INTERVAL_S = 2.0


def startup_fields(settings: Settings, host: str, port: int, workers: int) -> dict[str, Any]:
    """What ``serve`` says once at start-up (``serve.start``): where, on what store, with
    which providers."""
    p = providers(settings)
    admin = bool(settings.admin_username and settings.admin_password)

    def on(flag: bool) -> str:
        return "on" if flag else "off"

    return {
        "version": version(),
        "url": f"http://{host}:{port}",
        "store": redacted_url(settings.database_url),
        "midjourney": on(p.midjourney),
        "fireworks": on(p.fireworks),
        "listener": on(p.listener),
        "admin": on(admin),
        "workers": workers,
    }


def demo_settings(settings: Settings, env: MutableMapping[str, str]) -> Settings:
    """Try-it mode for ``serve --demo``: set in ``env`` too (the workers read their settings
    from it), with an admin made up for the run unless one is configured."""
    env["MJCORE_DEMO"] = "1"
    if not (settings.admin_username and settings.admin_password):
        env["MJCORE_ADMIN_USERNAME"] = "admin"
        env["MJCORE_ADMIN_PASSWORD"] = secrets.token_urlsafe(12)
    return evolve(
        settings,
        demo=True,
        admin_username=env.get("MJCORE_ADMIN_USERNAME"),
        admin_password=env.get("MJCORE_ADMIN_PASSWORD"),
    )


def demo_banner(settings: Settings, host: str, port: int) -> str:
    """What ``serve --demo`` prints at start: where to go and who to log in as."""
    name, password, _ = DEMO_USER
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
    return (
        f"mjcore demo: stand-in providers, nothing is sent to Midjourney or Fireworks.\n"
        f"  user pages:  {url}/web/   user {name!r}, password {password!r}\n"
        f"  admin pages: {url}/admin/ user {settings.admin_username!r},"
        f" password {settings.admin_password!r}"
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
        check_demo(settings)
    except (StoreUnavailable, DemoRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if settings.demo:
        print(demo_banner(settings, host, port), flush=True)
    configure_logging(settings)
    with multiprocess_metrics(workers) as metrics_dir:
        fields = startup_fields(settings, host, port, workers)
        log.info("serve.start", extra=fields | {"metrics_dir": metrics_dir and str(metrics_dir)})
        uvicorn.run(
            "entrypoints.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=logging_config(settings),  # applied in every worker too
            log_level=settings.log_level.lower(),
            proxy_headers=True,  # X-Forwarded-For from --forwarded-allow-ips peers only
            forwarded_allow_ips=forwarded_allow_ips,  # None: uvicorn's default (127.0.0.1)
            access_log=False,  # ours (entrypoints.app.AccessLog) leaves out query strings
            # against slowloris: a bounded number of connections (more get 503), idle
            # kept-alive ones closed, request heads bounded in time and size
            # (entrypoints.protocol)
            http="entrypoints.protocol:GuardedHttpToolsProtocol",
            limit_concurrency=settings.max_connections,
            timeout_keep_alive=settings.keepalive_s,
            h11_max_incomplete_event_size=settings.max_header_bytes,  # if h11 is ever chosen
        )
    return 0


@contextmanager
def multiprocess_metrics(workers: int) -> Iterator[Path | None]:
    """prometheus-client's multiprocess mode for ``--workers N`` (N > 1), or whenever
    ``PROMETHEUS_MULTIPROC_DIR`` is set: the directory emptied of an earlier run's files
    (a temporary one, removed at the end, unless given), and a watcher that lets the live
    gauges forget workers that died."""
    given = os.environ.get(MULTIPROCESS_DIR)
    if not given and workers <= 1:
        yield None
        return
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="mjcore-metrics-"))
    prepare_directory(path)
    os.environ[MULTIPROCESS_DIR] = str(path)  # the workers, spawned later, inherit it
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(BURY_INTERVAL_S):
            for pid in bury_dead_workers(path, pid_alive):
                log.info("metrics.worker_gone", extra={"worker_pid": pid})

    watcher = threading.Thread(target=watch, name="mjcore-metrics-watch", daemon=True)
    watcher.start()
    try:
        yield path
    finally:
        stop.set()
        watcher.join(timeout=5)
        if not given:
            os.environ.pop(MULTIPROCESS_DIR, None)
            shutil.rmtree(path, ignore_errors=True)


def listen(settings: Settings) -> int:
    """Run the Discord listener until SIGINT or SIGTERM."""
    configure_logging(settings)
    return asyncio.run(_listen(settings))


async def _listen(settings: Settings) -> int:
    from .bootstrap import bootstrap_app
    from .listener import listened_channels, run_listener

    services = await bootstrap_app(settings)
    if not await listened_channels(services):
        await services.aclose()
        print(
            "error: the listener needs a bot token for a channel of the pool:"
            " MJCORE_DISCORD_BOT_TOKEN with the MJCORE_DISCORD_* account, or an account"
            " added with its own (mjcore accounts add --bot-token)",
            file=sys.stderr,
        )
        return 1
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
    return 0

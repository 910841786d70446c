"""Our own Discord listener: one per channel across every process, held by a lease.

``mjcore listen`` runs it alone; ``mjcore serve`` runs it beside the app when
``MJCORE_DISCORD_BOT_TOKEN`` is set. Every process tries for the channel's lease; the one
that holds it listens, the others stand by and take over within ``LISTENER_LEASE_S`` of
the holder's last renewal (it renews four times per period).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from contextlib import suppress

from mjcore.services.leases import Lease

from .bootstrap import AppServices, Listener, gateway_listener

log = logging.getLogger("mjcore.listener")


def holder_name() -> str:
    """Who holds a lease: readable in the database, unique per process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def run_listener(services: AppServices) -> None:
    """Listen to the configured channel while holding its lease; never returns by itself."""
    settings = services.core.settings
    listener = gateway_listener(services)
    lease = Lease(
        services.core.store,
        services.core.clock,
        f"discord-listener:{settings.discord_channel_id}",
        holder_name(),
        settings.listener_lease_s,
    )
    running: asyncio.Task[None] | None = None
    try:
        while True:
            try:
                held = await lease.hold()
            except Exception:  # the database is away: nobody can be sure, so stand down
                log.exception("listener.lease", extra={"change": "error", "lease": lease.name})
                held = False
            if held and (running is None or running.done()):
                fields = {"change": "acquired", "lease": lease.name, "holder": lease.holder}
                log.info("listener.lease", extra=fields)
                running = asyncio.create_task(listener.run())
            elif not held and running is not None:
                fields = {"change": "lost", "lease": lease.name, "holder": lease.holder}
                log.info("listener.lease", extra=fields)
                await _stop(listener, running)
                running = None
            await asyncio.sleep(settings.listener_lease_s / 4)
    finally:
        if running is not None:
            await _stop(listener, running)
        with suppress(Exception):
            await lease.release()


async def _stop(listener: Listener, running: asyncio.Task[None]) -> None:
    await listener.stop()
    running.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await running

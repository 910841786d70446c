"""Our own Discord listener: one per channel of the account pool, across every process,
each held by its own lease.

``mjcore listen`` runs it alone; ``mjcore serve`` runs it beside the app when a bot token
is configured (``MJCORE_DISCORD_BOT_TOKEN``, or an account's own). Every process tries for
each channel's lease; the one that holds it listens there, the others stand by and take
over within ``LISTENER_LEASE_S`` of the holder's last renewal (it renews four times per
period). Accounts added to the pool are picked up at the next renewal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from contextlib import suppress

from attrs import define, field

from mjcore.services.leases import Lease

from .bootstrap import AppServices, Listener, gateway_listener

log = logging.getLogger("mjcore.listener")


def holder_name() -> str:
    """Who holds a lease: readable in the database, unique per process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def listened_channels(services: AppServices) -> dict[str, str]:
    """The channels to listen to, each with the bot token to listen with: every account's
    that has a bot (its own, else the settings')."""
    fallback = services.core.settings.discord_bot_token
    found = {}
    for account in await services.midjourney.accounts():
        token = account.bot_token.reveal() if account.bot_token is not None else fallback
        if token:
            found[account.channel_id] = token
    return found


@define
class _Channel:
    """One channel's lease, and its listener while the lease is ours."""

    lease: Lease
    listener: Listener
    running: asyncio.Task[None] | None = field(default=None)

    async def tick(self) -> None:
        try:
            held = await self.lease.hold()
        except Exception:  # the database is away: nobody can be sure, so stand down
            log.exception("listener.lease", extra={"change": "error", "lease": self.lease.name})
            held = False
        fields = {"lease": self.lease.name, "holder": self.lease.holder}
        if held and (self.running is None or self.running.done()):
            if self.running is not None:
                self._ended(self.running)
            log.info("listener.lease", extra=fields | {"change": "acquired"})
            self.running = asyncio.create_task(self.listener.run())
        elif not held and self.running is not None:
            log.info("listener.lease", extra=fields | {"change": "lost"})
            await self.stop()

    def _ended(self, run: asyncio.Task[None]) -> None:
        """Say why the last run stopped by itself (a bot token Discord refuses): read, its
        error is not dumped as a "never retrieved" traceback; the next tick tries again."""
        error = None if run.cancelled() else run.exception()
        if error is not None:
            extra = {"lease": self.lease.name, "error": f"{type(error).__name__}: {error}"}
            log.warning("listener.stopped", extra=extra)

    async def stop(self) -> None:
        if self.running is not None:
            await _stop(self.listener, self.running)
            self.running = None

    async def close(self) -> None:
        await self.stop()
        with suppress(Exception):
            await self.lease.release()


async def run_listener(services: AppServices) -> None:
    """Listen to every channel of the pool whose lease this process holds; never returns
    by itself."""
    settings = services.core.settings
    holder = holder_name()
    channels: dict[str, _Channel] = {}
    try:
        while True:
            try:
                wanted = await listened_channels(services)
            except Exception:  # the database is away: keep what we have, try again
                log.exception("listener.accounts_failed")
                wanted = dict.fromkeys(channels, "")
            for channel in channels.keys() - wanted.keys():  # its account left the pool
                await channels.pop(channel).close()
            for channel in wanted.keys() - channels.keys():
                lease = Lease(
                    services.core.store,
                    services.core.clock,
                    f"discord-listener:{channel}",
                    holder,
                    settings.listener_lease_s,
                )
                listener = gateway_listener(services, channel, wanted[channel])
                channels[channel] = _Channel(lease, listener)
            for held in channels.values():
                await held.tick()
            await asyncio.sleep(settings.listener_lease_s / 4)
    finally:
        for held in channels.values():
            await held.close()


async def _stop(listener: Listener, running: asyncio.Task[None]) -> None:
    await listener.stop()
    running.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await running

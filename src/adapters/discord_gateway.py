"""Midjourney's messages from Discord's gateway, through discord.py (a bot token).

discord.py brings the gateway protocol: heartbeats, RESUME after a dropped connection
(Discord replays what was missed), reconnects and REST rate limits. This module only
turns the Midjourney bot's messages in one channel into the core's events.

discord.py has no per-client base URL: :func:`point_discord_py_at` sets its REST base and
gateway URL for the process (one Discord per process; tests point it at a fake).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import discord
import yarl
from attrs import frozen

from mjcore.midjourney import Attachment, Embed, EventType, ListenerEvent, classify

log = logging.getLogger("mjcore.listener")
Deliver = Callable[[ListenerEvent], Awaitable[object]]


@frozen
class GatewayConfig:
    bot_token: str
    channel_id: str
    midjourney_id: str  # the Midjourney bot's user (application) id
    deleted_grace_s: float = 5.0  # a job message deleted this long without a result: banned
    catch_up: int = 50  # recent channel messages replayed on connect (what a takeover missed)


def point_discord_py_at(api_url: str, gateway_url: str) -> None:
    """discord.py's REST base and first gateway URL, for this process."""
    discord.http.Route.BASE = api_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def _embed(embed: discord.Embed) -> Embed:
    return Embed(
        title=embed.title or "",
        description=embed.description or "",
        footer=embed.footer.text or "",
        image_url=embed.image.url,
    )


def message_event(message: discord.Message, *, edited: bool) -> ListenerEvent | None:
    """A Midjourney message as the core's event, or None if it says nothing about a job."""
    embeds = tuple(_embed(e) for e in message.embeds)
    attachments = tuple(Attachment(a.url, a.filename) for a in message.attachments)
    color = next((e.color.value for e in message.embeds if e.color is not None), None)
    kind = classify(message.content, embeds, attachments, edited=edited, color=color)
    if kind is None:
        return None
    reference = message.reference.message_id if message.reference else None
    return ListenerEvent(
        type=kind,
        message_id=str(message.id),
        content=message.content,
        trigger_id=None,  # from our own marker in the prompt: see ListenerEvent.trigger
        attachments=attachments,
        embeds=embeds,
        reference_id=None if reference is None else str(reference),
    )


class _Client(discord.Client):
    def __init__(self, listener: GatewayListener) -> None:
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.message_content = True
        super().__init__(intents=intents, max_messages=None)
        self.listener = listener

    async def on_ready(self) -> None:
        await self.listener.connected(self)

    async def on_message(self, message: discord.Message) -> None:
        await self.listener.seen(message, edited=False)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.listener.seen(payload.message, edited=True)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.listener.deleted(payload.channel_id, payload.message_id)


class GatewayListener:
    """Runs one discord.py client for one channel and hands its events to ``deliver``."""

    def __init__(self, config: GatewayConfig, deliver: Deliver) -> None:
        self.config = config
        self.deliver = deliver
        self._client: _Client | None = None
        # the trigger of each job message seen starting: a deletion of one may be a ban
        self._started: OrderedDict[int, str] = OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Connect and listen until :meth:`stop` (reconnecting as discord.py does)."""
        self._client = _Client(self)
        try:
            await self._client.start(self.config.bot_token)
        finally:
            await self.stop()

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._client is not None and not self._client.is_closed():
            await self._client.close()

    def _ours(self, channel_id: int, author_id: int | None = None) -> bool:
        mine = str(channel_id) == self.config.channel_id
        return mine and (author_id is None or str(author_id) == self.config.midjourney_id)

    async def connected(self, client: discord.Client) -> None:
        """Replay the channel's latest messages: what happened while nobody listened."""
        log.info("listener.connected", extra={"user": str(client.user)})
        channel = client.get_channel(int(self.config.channel_id))
        if not isinstance(channel, discord.abc.Messageable):
            channel = await client.fetch_channel(int(self.config.channel_id))
        assert isinstance(channel, discord.abc.Messageable)
        try:
            recent = [m async for m in channel.history(limit=self.config.catch_up)]
        except discord.HTTPException as exc:
            log.warning("listener.catch_up_failed", extra={"error": str(exc)})
            return
        for message in reversed(recent):  # oldest first, as they happened
            await self.seen(message, edited=message.edited_at is not None)

    async def seen(self, message: discord.Message, *, edited: bool) -> None:
        if not self._ours(message.channel.id, message.author.id):
            return
        event = message_event(message, edited=edited)
        if event is None:
            return
        if event.type is EventType.START and event.trigger is not None:
            self._started[message.id] = event.trigger
            while len(self._started) > 1000:
                self._started.popitem(last=False)
        await self._deliver(event)

    async def deleted(self, channel_id: int, message_id: int) -> None:
        """Midjourney deletes a job's message when it finishes (after posting the result)
        and when it refuses the prompt after all: wait a little, then let the core decide
        (it fails only a job still running whose message this was)."""
        trigger = self._started.pop(message_id, None)
        if not self._ours(channel_id) or trigger is None:
            return
        event = ListenerEvent(EventType.DELETED, str(message_id), "", trigger)
        task = asyncio.create_task(self._later(event, self.config.deleted_grace_s))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _later(self, event: ListenerEvent, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._deliver(event)

    async def _deliver(self, event: ListenerEvent) -> None:
        try:
            handled = await self.deliver(event)
        except Exception:  # one bad event must not stop the listener
            log.exception("listener.event_failed", extra={"type": event.type.value})
            return
        fields = {"type": event.type.value, "trigger_id": event.trigger, "handled": str(handled)}
        log.debug("listener.event", extra=fields)

"""The tests' fake Discord and Fireworks as standalone servers, so they load their own core.

``discord-ending PORT CALLBACK_URL SECRET`` is the fake Discord that also finishes every
job it is sent: right after each imagine it posts the grid's ``end`` event to mjcore's
HTTP callback, as yokonsan's listener does, so slots free and the queue turns over (the
dispatching scenario).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
import uvicorn
from tests.fakes.discord import FakeDiscord, listener_event
from tests.fakes.fireworks import FakeFireworks


class EndingBot:
    """Stands in for the scripted Midjourney bot: ends each imagine through the callback."""

    def __init__(self, fake: FakeDiscord, callback_url: str, secret: str) -> None:
        self.fake, self.url = fake, callback_url
        self.headers = {"X-Callback-Secret": secret}
        self.client: httpx.AsyncClient | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    def on_interaction(self, body: dict[str, Any]) -> None:
        value = str(body["data"]["options"][0]["value"])
        trigger = value[2 : value.index("#>")]
        task = asyncio.get_running_loop().create_task(self._end(trigger))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _end(self, trigger: str) -> None:
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64))
        self.sent += 1
        content = f"**<#{trigger}#>a red fox in the snow** - <@1> (fast)"
        event = listener_event(
            self.fake, "end", trigger, 10**18 + self.sent, content, msg_hash=f"h{self.sent}"
        )
        await self.client.post(self.url, json=event, headers=self.headers)


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "fireworks":
        app = FakeFireworks().app()
    else:
        discord = FakeDiscord()
        discord.url = f"http://127.0.0.1:{port}"  # its CDN's address in the events it sends
        if kind == "discord-ending":
            discord.bot = EndingBot(discord, sys.argv[3], sys.argv[4])  # type: ignore[assignment]
        app = discord.app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)

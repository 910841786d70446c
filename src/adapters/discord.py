"""Midjourney through Discord's HTTP API, as the Discord client itself sends it."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
from attrs import define, frozen

from mjcore.errors import (
    InvalidInput,
    ProviderRejected,
    ProviderUnavailable,
    SubmissionUncertain,
)
from mjcore.midjourney import MjAction, discord_prompt
from mjcore.ports import Upload
from mjcore.tasks import Task

from .upstream import call

APPLICATION_COMMAND, MESSAGE_COMPONENT = 2, 3
OPTION_STRING, OPTION_ATTACHMENT = 3, 11
BUTTON = 2
DISCORD_EPOCH_MS = 1420070400000


@frozen
class DiscordConfig:
    api_url: str
    user_token: str | None
    guild_id: str | None
    channel_id: str | None
    application_id: str
    imagine_id: str
    imagine_version: str
    describe_id: str
    describe_version: str
    session_id: str
    retries: int = 2  # after a connection error, when nothing reached Discord
    max_rate_wait_s: float = 10.0  # the longest Retry-After we wait out; longer is a refusal
    rate_limit_retries: int = 3

    @property
    def configured(self) -> bool:
        """Are the user token, guild and channel all given?"""
        return bool(self.user_token and self.guild_id and self.channel_id)


BUTTONS = {
    MjAction.UPSCALE: "MJ::JOB::upsample::{index}::{hash}",
    MjAction.VARIATION: "MJ::JOB::variation::{index}::{hash}",
    MjAction.SOLO_VARIATION: "MJ::JOB::variation::1::{hash}::SOLO",
    MjAction.SOLO_LOW_VARIATION: "MJ::JOB::low_variation::1::{hash}::SOLO",
    MjAction.SOLO_HIGH_VARIATION: "MJ::JOB::high_variation::1::{hash}::SOLO",
    MjAction.EXPAND: "MJ::JOB::pan_{direction}::1::{hash}::SOLO",
    MjAction.ZOOMOUT: "MJ::Outpaint::{zoomout}::1::{hash}::SOLO",
    MjAction.RESET: "MJ::JOB::reroll::0::{hash}::SOLO",
}
"""Midjourney's button ids, by the action that presses them."""


def custom_id(task: Task) -> str:
    """The Midjourney button a follow-up task presses."""
    template = BUTTONS.get(MjAction(task.action))
    if template is None:
        raise InvalidInput(f"{task.action} is not a button")
    p = task.params
    return template.format(
        index=p.get("index"),
        hash=p["msg_hash"],
        direction=p.get("direction"),
        zoomout=p.get("zoomout"),
    )


_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Errors raised before a byte of the request left: safe to try again."""


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a 429 asks us to wait: the body's precise ``retry_after``, else the header."""
    try:
        value = float(response.json()["retry_after"])
    except (ValueError, LookupError, TypeError):
        try:
            value = float(response.headers.get("retry-after", ""))
        except ValueError:
            return None
    return value if 0 <= value < 3600 else None


def nonce() -> str:
    """A snowflake-shaped nonce, as the Discord client sends."""
    return str(((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | secrets.randbits(22))


@define
class DiscordMidjourney:
    """:class:`mjcore.ports.MidjourneyProvider` over an injected ``httpx.AsyncClient``."""

    client: httpx.AsyncClient
    config: DiscordConfig

    def _envelope(self, kind: int, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
        c = self.config
        return {
            "type": kind,
            "application_id": c.application_id,
            "guild_id": c.guild_id,
            "channel_id": c.channel_id,
            "session_id": c.session_id,
            "nonce": nonce(),
            "data": data,
            **extra,
        }

    def payload(self, task: Task) -> dict[str, Any]:
        """The interaction for a task: a slash command or a button press."""
        c = self.config
        action = MjAction(task.action)
        if action is MjAction.IMAGINE:
            text = discord_prompt(task.prompt, task.params.get("picurl"), task.trigger_id or "")
            option = {"type": OPTION_STRING, "name": "prompt", "value": text}
            data = {
                "version": c.imagine_version,
                "id": c.imagine_id,
                "name": "imagine",
                "type": 1,
                "options": [option],
                "attachments": [],
            }
            return self._envelope(APPLICATION_COMMAND, data)
        if action is MjAction.DESCRIBE:
            uploaded = task.params["upload_filename"]
            data = {
                "version": c.describe_version,
                "id": c.describe_id,
                "name": "describe",
                "type": 1,
                "options": [{"type": OPTION_ATTACHMENT, "name": "image", "value": 0}],
                "attachments": [
                    {
                        "id": "0",
                        "filename": uploaded.rsplit("/", 1)[-1],
                        "uploaded_filename": uploaded,
                    }
                ],
            }
            return self._envelope(APPLICATION_COMMAND, data)
        data = {"component_type": BUTTON, "custom_id": custom_id(task)}
        return self._envelope(
            MESSAGE_COMPONENT, data, message_flags=0, message_id=task.params["msg_id"]
        )

    async def submit(self, task: Task) -> None:
        url = f"{self.config.api_url}/interactions"
        await self._send("interaction", "POST", url, json=self.payload(task))

    async def upload(self, filename: str, data: bytes, content_type: str) -> Upload:
        channel = self.config.channel_id
        files = {"files": [{"filename": filename, "file_size": len(data), "id": "0"}]}
        answer = await self._send(
            "attachments",
            "POST",
            f"{self.config.api_url}/channels/{channel}/attachments",
            json=files,
        )
        try:
            slot = answer.json()["attachments"][0]
            upload = Upload(str(slot["upload_filename"]), str(slot["upload_url"]))
        except (ValueError, LookupError, TypeError) as exc:
            raise ProviderRejected("Discord's upload answer was not understood") from exc
        # the bucket URL is pre-signed: no Authorization header
        await self._send(
            "upload",
            "PUT",
            upload.upload_url,
            content=data,
            headers={"Content-Type": content_type},
            auth=False,
        )
        return upload

    async def send_message(self, upload_filename: str) -> str:
        channel = self.config.channel_id
        name = upload_filename.rsplit("/", 1)[-1]
        body = {
            "content": "",
            "nonce": nonce(),
            "channel_id": channel,
            "type": 0,
            "sticker_ids": [],
            "attachments": [{"id": "0", "filename": name, "uploaded_filename": upload_filename}],
        }
        answer = await self._send(
            "message", "POST", f"{self.config.api_url}/channels/{channel}/messages", json=body
        )
        try:
            return str(answer.json()["attachments"][0]["url"])
        except (ValueError, LookupError, TypeError) as exc:
            raise ProviderRejected("Discord's message answer has no attachment URL") from exc

    async def _send(
        self, operation: str, method: str, url: str, *, auth: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """One request, sent at most once as far as Discord could have seen it.

        A connection that never opened is retried ``retries`` times; a 429 is waited out
        (``Retry-After``, bounded) and sent again, since Discord did not act on it. Anything
        that may have reached Discord (a read timeout, a dropped connection after the body
        went out) is not sent again: a second interaction would be a second job.
        """
        c = self.config
        if not c.configured:
            raise ProviderUnavailable("Discord is not configured")
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers["Authorization"] = c.user_token
        failures = rate_limited = 0
        while True:
            try:
                response = await call(
                    self.client,
                    "discord",
                    operation,
                    method,
                    url,
                    secret=c.user_token,
                    headers=headers,
                    **kwargs,
                )
            except _NEVER_SENT as exc:
                failures += 1
                if failures > c.retries:
                    raise ProviderUnavailable(
                        f"Discord did not answer after {failures} attempts: {type(exc).__name__}"
                    ) from exc
                continue
            except httpx.TransportError as exc:
                raise SubmissionUncertain(
                    f"no answer from Discord ({type(exc).__name__}); not sent again, since"
                    " Discord may have received it"
                ) from exc
            if response.status_code == 429 and rate_limited < c.rate_limit_retries:
                wait = retry_after(response)
                if wait is not None and wait <= c.max_rate_wait_s:
                    rate_limited += 1
                    await asyncio.sleep(wait)
                    continue
            if response.is_success:
                return response
            raise ProviderRejected(f"Discord refused the request: HTTP {response.status_code}")

"""Midjourney through Discord's HTTP API, as the Discord client itself sends it."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import Any

import httpx
from attrs import define, field, frozen

from mjcore.discord_accounts import AccountRejected, DiscordAccount, Mode
from mjcore.errors import (
    InvalidInput,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    SubmissionUncertain,
)
from mjcore.midjourney import MjAction, discord_prompt, pressed
from mjcore.ports import Upload
from mjcore.tasks import Task

from .upstream import call

APPLICATION_COMMAND, MESSAGE_COMPONENT = 2, 3
OPTION_STRING, OPTION_ATTACHMENT = 3, 11
BUTTON = 2
DISCORD_EPOCH_MS = 1420070400000


@frozen
class DiscordConfig:
    """What every account's requests share (each account brings its token and channel)."""

    api_url: str
    application_id: str
    imagine_id: str
    imagine_version: str
    describe_id: str
    describe_version: str
    session_id: str
    retries: int = 2  # after a connection error, when nothing reached Discord
    max_rate_wait_s: float = 10.0  # the longest Retry-After we wait out; longer is a refusal
    rate_limit_retries: int = 3


def custom_id(task: Task) -> str:
    """The Midjourney button a follow-up task presses."""
    found = pressed(task)
    if found is None:
        raise InvalidInput(f"{task.action} is not a button")
    return found


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
    """:class:`mjcore.ports.MidjourneyProvider` over an injected ``httpx.AsyncClient``, for
    every account of the pool (each request carries its account's token and channel)."""

    client: httpx.AsyncClient
    config: DiscordConfig
    _not_before: dict[str, float] = field(factory=dict, init=False)
    """Per account: no request before this (monotonic) time, after Discord said 429."""

    def _envelope(
        self, account: DiscordAccount, kind: int, data: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        c = self.config
        return {
            "type": kind,
            "application_id": c.application_id,
            "guild_id": account.guild_id,
            "channel_id": account.channel_id,
            "session_id": c.session_id,
            "nonce": nonce(),
            "data": data,
            **extra,
        }

    def payload(self, task: Task, account: DiscordAccount) -> dict[str, Any]:
        """The interaction for a task: a slash command or a button press."""
        c = self.config
        action = MjAction(task.action)
        if action is MjAction.IMAGINE:
            prompt = with_mode(task.prompt, account.mode)
            text = discord_prompt(prompt, task.params.get("picurl"), task.trigger_id or "")
            option = {"type": OPTION_STRING, "name": "prompt", "value": text}
            data = {
                "version": c.imagine_version,
                "id": c.imagine_id,
                "name": "imagine",
                "type": 1,
                "options": [option],
                "attachments": [],
            }
            return self._envelope(account, APPLICATION_COMMAND, data)
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
            return self._envelope(account, APPLICATION_COMMAND, data)
        data = {"component_type": BUTTON, "custom_id": custom_id(task)}
        return self._envelope(
            account, MESSAGE_COMPONENT, data, message_flags=0, message_id=task.params["msg_id"]
        )

    async def submit(self, task: Task, account: DiscordAccount) -> None:
        url = f"{self.config.api_url}/interactions"
        await self._send(account, "interaction", "POST", url, json=self.payload(task, account))

    async def check(self, account: DiscordAccount) -> bool:
        try:
            await self._send(account, "me", "GET", f"{self.config.api_url}/users/@me")
        except ProviderError:
            return False
        return True

    async def upload(
        self, account: DiscordAccount, filename: str, data: bytes, content_type: str
    ) -> Upload:
        channel = account.channel_id
        files = {"files": [{"filename": filename, "file_size": len(data), "id": "0"}]}
        answer = await self._send(
            account,
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
            account,
            "upload",
            "PUT",
            upload.upload_url,
            content=data,
            headers={"Content-Type": content_type},
            auth=False,
        )
        return upload

    async def send_message(self, account: DiscordAccount, upload_filename: str) -> str:
        channel = account.channel_id
        name = upload_filename.rsplit("/", 1)[-1]
        body = {
            "content": "",
            "nonce": nonce(),
            "channel_id": channel,
            "type": 0,
            "sticker_ids": [],
            "attachments": [{"id": "0", "filename": name, "uploaded_filename": upload_filename}],
        }
        url = f"{self.config.api_url}/channels/{channel}/messages"
        answer = await self._send(account, "message", "POST", url, json=body)
        try:
            return str(answer.json()["attachments"][0]["url"])
        except (ValueError, LookupError, TypeError) as exc:
            raise ProviderRejected("Discord's message answer has no attachment URL") from exc

    async def _send(
        self,
        account: DiscordAccount,
        operation: str,
        method: str,
        url: str,
        *,
        auth: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request, sent at most once as far as Discord could have seen it.

        A connection that never opened is retried ``retries`` times; a 429 is waited out
        (``Retry-After``, bounded) and sent again, since Discord did not act on it, and
        the account's other requests wait too (other accounts' do not). Anything that may
        have reached Discord (a read timeout, a dropped connection after the body went out)
        is not sent again: a second interaction would be a second job. 401 and 403 with
        the account's token are :class:`AccountRejected`: the token is no good.
        """
        c = self.config
        token = account.user_token.reveal()
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers["Authorization"] = token
        failures = rate_limited = 0
        while True:
            await self._wait_turn(account.name)
            try:
                response = await call(
                    self.client,
                    "discord",
                    operation,
                    method,
                    url,
                    secret=token,
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
            if response.status_code == 429:
                wait = retry_after(response)
                if wait is not None:  # the account's next requests wait too
                    self._not_before[account.name] = time.monotonic() + wait
                    if rate_limited < c.rate_limit_retries and wait <= c.max_rate_wait_s:
                        rate_limited += 1
                        continue
            if response.is_success:
                return response
            if auth and response.status_code in (401, 403):
                raise AccountRejected(
                    f"Discord refused account {account.name}'s token: HTTP {response.status_code}"
                )
            raise ProviderRejected(f"Discord refused the request: HTTP {response.status_code}")

    async def _wait_turn(self, account: str) -> None:
        """Wait out the account's 429, if it has one (at most the longest wait we accept)."""
        wait = self._not_before.get(account, 0) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(min(wait, self.config.max_rate_wait_s))


def with_mode(prompt: str, mode: Mode) -> str:
    """The prompt with the account's speed (``--fast`` / ``--relax``) unless it names one."""
    if mode is Mode.ANY or re.search(r"(?:^|\s)--(?:fast|relax|turbo)\b", prompt):
        return prompt
    return f"{prompt} --{mode.value}"

"""Client callbacks over HTTP, signed as the Standard Webhooks spec says, to safe targets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time

import httpx
from attrs import define, field, frozen

from mjcore.errors import InvalidInput
from mjcore.webhooks import Outcome

from .network import is_public, peer_of, resolves_public


def signature(key: bytes, webhook_id: str, timestamp: int, payload: str) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``: the webhook-signature header."""
    signed = f"{webhook_id}.{timestamp}.{payload}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@frozen
class Targets:
    """:class:`mjcore.ports.TargetGuard`: https to public addresses, unless the operator
    allows private ones (and plain http) with ``allow_private``."""

    allow_private: bool = False

    async def check(self, url: str) -> None:
        try:
            parts = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise InvalidInput("the callback URL is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.host:
            raise InvalidInput("the callback URL must be http(s)")
        if self.allow_private:
            return
        if parts.scheme != "https":
            raise InvalidInput("the callback URL must be https")
        if not await resolves_public(parts.host, parts.port or 443):
            raise InvalidInput("the callback URL does not resolve to a public address")

    def fine_peer(self, response: httpx.Response) -> bool:
        """Was the connection really to a public address (DNS may change its mind)?"""
        peer = peer_of(response)
        return self.allow_private or (peer is not None and is_public(peer))


@define
class HttpWebhookSender:
    """:class:`mjcore.ports.WebhookSender` over its own httpx client (no redirects)."""

    client: httpx.AsyncClient
    key: bytes = field(repr=False)
    targets: Targets
    timeout_s: float = 10.0

    async def send(self, url: str, webhook_id: str, payload: str) -> Outcome:
        try:
            await self.targets.check(url)  # again now: the name may point elsewhere today
        except InvalidInput as exc:
            return Outcome(error=str(exc))
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "mjcore-webhooks",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(self.key, webhook_id, timestamp, payload),
        }
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.client.post(url, content=payload, headers=headers)
        except (TimeoutError, httpx.HTTPError) as exc:
            return Outcome(error=type(exc).__name__)
        if not self.targets.fine_peer(response):
            return Outcome(error="the callback URL reached a private address")
        return Outcome(status=response.status_code)

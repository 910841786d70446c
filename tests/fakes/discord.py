"""A fake Discord: the real paths and payload shapes Midjourney's client traffic uses.

It records every interaction and serves uploads and CDN images, so tests can check
exactly what mjcore sent and feed back what the listener bot would have reported.

It is also Discord for a bot: the read routes discord.py calls with a bot token, a
websocket gateway (:mod:`.gateway`) and, when enabled, a scripted Midjourney bot
(:mod:`.midjourney_bot`) that answers interactions with messages in the channel.
"""

from __future__ import annotations

import asyncio
import math
import struct
import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
from attrs import frozen
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from .gateway import Gateway, Payload, on_loop, snowflake, timestamp
from .images import png
from .loopback import LoopbackServer
from .midjourney_bot import MIDJOURNEY_ID, MidjourneyBot

TOKEN = "fake-user-token"
GUILD = "1100000000000000001"
CHANNEL = "1100000000000000002"
USER_ID = "1100000000000000010"
USERNAME = "gaosh"
BOT_ID = "1100000000000000020"
BOT_TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAyMA.GfAkEd.fake-bot-token-for-loopback-tests"
"""The listener's bot token, as discord.py takes it (no ``Bot`` prefix)."""

UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}


@frozen
class FakeAccount:
    """A Discord user of the pool: its token and the channel it sends Midjourney jobs to."""

    name: str
    token: str
    channel_id: str
    guild_id: str = GUILD


class FakeDiscord:
    """State shared between the server thread and the test.

    With no arguments it only records what mjcore sends. ``midjourney=True`` turns on the
    scripted Midjourney bot (same as ``fake.bot.enable()``).
    """

    def __init__(self, *, midjourney: bool = False, heartbeat_interval_ms: int = 41250) -> None:
        self.lock = threading.Lock()
        self.interactions: list[dict[str, Any]] = []
        self.bad_auth = 0
        self.uploads: dict[str, bytes] = {}
        self.messages: list[dict[str, Any]] = []
        self.interaction_status = 204
        self.cdn_image = png(16, 16)
        self.cdn_downloads = 0
        self.interaction_attempts = 0
        """Every authorised POST to /interactions, refused with 429 or not."""
        self.rate_limited = 0
        self.hung = 0
        self.bad_bot_auth = 0
        self.api_calls: list[str] = []
        """``"GET /api/v9/users/@me"``... for every call to the bot-side routes."""
        self.unhandled: list[str] = []
        """Requests no route serves (answered 404 or 405 with Discord's error body)."""
        self._rate_limit_next: Counter[str | None] = Counter()  # by token (None: any)
        self._retry_after = 1.0
        self.accounts: dict[str, FakeAccount] = {TOKEN: FakeAccount("default", TOKEN, CHANNEL)}
        """Every user token this fake accepts, by token (``TOKEN``'s is the settings')."""
        self.rejected: set[str] = set()
        """Tokens answered 401, as Discord answers a token it has revoked."""
        self.in_flight: Counter[str] = Counter()
        """Jobs started per channel (every recorded interaction) and not yet ended by the
        test (:meth:`finished`); ``peak`` keeps each channel's highest count."""
        self.peak: Counter[str] = Counter()
        self._hang_next = 0
        self._closed = asyncio.Event()
        self._channel: dict[str, Payload] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.gateway = Gateway(
            token=BOT_TOKEN,
            ready=self._ready,
            guild_create=self._guild_create,
            heartbeat_interval_ms=heartbeat_interval_ms,
        )
        self.bot = MidjourneyBot(self)
        if midjourney:
            self.bot.enable()
        self.server = LoopbackServer(self.app())
        self.url = self.server.url

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v9"

    @property
    def ws_url(self) -> str:
        """The gateway, as ``GET /gateway`` names it (discord.py adds ``?v=&encoding=``)."""
        return f"{self.url.replace('http://', 'ws://', 1)}/gateway"

    def env(self) -> dict[str, str]:
        """Settings that point mjcore at this fake."""
        return {
            "MJCORE_DISCORD_API_URL": self.api_url,
            "MJCORE_DISCORD_USER_TOKEN": TOKEN,
            "MJCORE_DISCORD_GUILD_ID": GUILD,
            "MJCORE_DISCORD_CHANNEL_ID": CHANNEL,
            # its CDN is plain http on loopback: trusted only because it is named in full
            "MJCORE_MIRROR_HOSTS": self.url,
        }

    def listener_env(self) -> dict[str, str]:
        """:meth:`env` plus what mjcore's own listener needs (kept apart: it starts one)."""
        return self.env() | {
            "MJCORE_DISCORD_BOT_TOKEN": BOT_TOKEN,
            "MJCORE_DISCORD_GATEWAY_URL": self.ws_url,
            "MJCORE_MJ_APPLICATION_ID": MIDJOURNEY_ID,
        }

    def sent(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.interactions)

    def prompts(self) -> list[str]:
        return [
            i["data"]["options"][0]["value"]
            for i in self.sent()
            if i["type"] == 2 and i["data"]["name"] == "imagine"
        ]

    def custom_ids(self) -> list[str]:
        return [i["data"]["custom_id"] for i in self.sent() if i["type"] == 3]

    def cdn(self, name: str) -> str:
        return f"{self.url}/attachments/{CHANNEL}/{name}"

    # -- knobs ---------------------------------------------------------------------------

    def rate_limit_next(
        self, count: int = 1, *, retry_after: float = 1.0, token: str | None = None
    ) -> None:
        """Answer the next ``count`` interactions 429 (only ``token``'s, if given), as
        Discord does, without recording them."""
        with self.lock:
            self._rate_limit_next[token] = count
            self._retry_after = retry_after

    def add_account(self, name: str) -> FakeAccount:
        """Another Discord user with its own channel (for a pool of accounts)."""
        number = len(self.accounts) + 1
        account = FakeAccount(
            name, f"fake-user-token-{name}-{uuid.uuid4().hex[:8]}", f"12000000000000{number:05d}"
        )
        with self.lock:
            self.accounts[account.token] = account
        return account

    def reject(self, token: str) -> None:
        """Revoke a user token: every later call with it is answered 401."""
        with self.lock:
            self.rejected.add(token)

    def finished(self, channel_id: str, count: int = 1) -> None:
        """The test ended ``count`` of the channel's jobs (before telling mjcore so)."""
        with self.lock:
            self.in_flight[channel_id] -= count

    def sent_on(self, channel_id: str) -> list[dict[str, Any]]:
        return [i for i in self.sent() if i.get("channel_id") == channel_id]

    def hang_next(self, count: int = 1) -> None:
        """Record and act on the next ``count`` interactions, then never answer them."""
        with self.lock:
            self._hang_next = count

    # -- the channel, as Discord keeps it ------------------------------------------------

    def history(self) -> list[Payload]:
        """The channel's messages, oldest first, as they stand now."""
        with self.lock:
            return [dict(m) for m in self._channel.values()]

    def get_message(self, message_id: str) -> Payload | None:
        with self.lock:
            found = self._channel.get(message_id)
            return dict(found) if found is not None else None

    def post_message(self, author: Payload, **fields: Any) -> Payload:
        """Create a message in the channel and dispatch MESSAGE_CREATE."""
        message = {
            "id": snowflake(),
            "type": 0,
            "channel_id": CHANNEL,
            "guild_id": GUILD,
            "author": author,
            "content": "",
            "embeds": [],
            "attachments": [],
            "components": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "flags": 0,
            "timestamp": timestamp(),
            "edited_timestamp": None,
            **fields,
        }
        with self.lock:
            self._channel[message["id"]] = message
        self.gateway.dispatch("MESSAGE_CREATE", _with_member(message))
        return dict(message)

    def edit_message(self, message_id: str, **changes: Any) -> Payload:
        """Change a message and dispatch MESSAGE_UPDATE with the whole message, as v10 does."""
        with self.lock:
            message = self._channel[message_id]
            message.update(changes, edited_timestamp=timestamp())
            current = dict(message)
        self.gateway.dispatch("MESSAGE_UPDATE", _with_member(current))
        return current

    def delete_message(self, message_id: str) -> None:
        with self.lock:
            channel = self._channel.pop(message_id)["channel_id"]
        self.gateway.dispatch(
            "MESSAGE_DELETE", {"id": message_id, "channel_id": channel, "guild_id": GUILD}
        )

    def channel_ids(self) -> list[str]:
        """Every account's channel, the settings' first (all in the one fake guild)."""
        with self.lock:
            return [a.channel_id for a in self.accounts.values()]

    def attachment(
        self, filename: str, *, content_type: str = "image/png", ephemeral: bool = False
    ) -> Payload:
        """An attachment object whose URL this fake's CDN serves (signed-URL query and all)."""
        attachment_id = snowflake()
        kind = "ephemeral-attachments" if ephemeral else "attachments"
        path = f"{kind}/{CHANNEL}/{attachment_id}/{filename}"
        signed = f"?ex={int(time.time()) + 86400:x}&is={int(time.time()):x}&hm={uuid.uuid4().hex}&"
        width, height = _png_size(self.cdn_image)
        return {
            "id": attachment_id,
            "filename": filename,
            "size": len(self.cdn_image),
            "url": f"{self.url}/{path}{signed}",
            "proxy_url": f"{self.url.replace('127.0.0.1', 'localhost')}/{path}{signed}",
            "width": width,
            "height": height,
            "content_type": content_type,
        }

    def user(self) -> Payload:
        """The account behind the user token: the one pressing Midjourney's buttons."""
        return _user(USER_ID, USERNAME)

    # -- HTTP ----------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        token = request.headers.get("authorization") or ""
        with self.lock:
            if token in self.accounts and token not in self.rejected:
                return True
            self.bad_auth += 1
        return False

    def _limited(self, token: str) -> bool:
        """Whether this call is one of those :meth:`rate_limit_next` asked to refuse."""
        for key in (token, None):
            if self._rate_limit_next[key] > 0:
                self._rate_limit_next[key] -= 1
                self.rate_limited += 1
                return True
        return False

    def _caller(self, request: Request) -> str | None:
        """``"bot"`` or ``"user"`` for a valid token on the read routes, else None."""
        header = request.headers.get("authorization")
        with self.lock:
            self.api_calls.append(f"{request.method} {request.url.path}")
            if header == f"Bot {BOT_TOKEN}":
                return "bot"
            if header in self.accounts and header not in self.rejected:
                return "user"
            self.bad_bot_auth += 1
        return None

    async def _until_gone(self, request: Request) -> None:
        """Hold a request until its client hangs up or this fake stops."""
        gone = asyncio.ensure_future(request.receive())
        closed = asyncio.ensure_future(self._closed.wait())
        await asyncio.wait({gone, closed}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        closed.cancel()

    def _ready(self) -> Payload:
        return {
            "user": _bot_user(),
            "guilds": [{"id": GUILD, "unavailable": True}],
            "application": {"id": BOT_ID, "flags": 1 << 19},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["us-east"],
            "user_settings": {},
            "auth": {},
            "_trace": ['["gateway-prd-fake",{"micros":0}]'],
        }

    def _guild_create(self) -> Payload:
        joined = timestamp()
        return {
            "id": GUILD,
            "name": "mjcore fake guild",
            "icon": None,
            "banner": None,
            "splash": None,
            "discovery_splash": None,
            "description": None,
            "owner_id": USER_ID,
            "application_id": None,
            "unavailable": False,
            "large": False,
            "lazy": True,
            "member_count": 3,
            "joined_at": joined,
            "features": [],
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "roles": [
                {
                    "id": GUILD,
                    "name": "@everyone",
                    "permissions": "2248473465835073",
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                    "icon": None,
                    "unicode_emoji": None,
                }
            ],
            "channels": [self._channel_object(c) for c in self.channel_ids()],
            "threads": [],
            "members": [
                {
                    "user": _bot_user(),
                    "roles": [],
                    "joined_at": joined,
                    "nick": None,
                    "avatar": None,
                    "premium_since": None,
                    "deaf": False,
                    "mute": False,
                    "pending": False,
                    "flags": 0,
                    "communication_disabled_until": None,
                }
            ],
            "voice_states": [],
            "presences": [],
            "emojis": [],
            "stickers": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _channel_object(self, channel: str) -> Payload:
        with self.lock:
            mine = [i for i, m in self._channel.items() if m["channel_id"] == channel]
        return {
            "id": channel,
            "type": 0,
            "guild_id": GUILD,
            "name": "midjourney",
            "position": 0,
            "flags": 0,
            "parent_id": None,
            "topic": None,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "permission_overwrites": [],
            "last_message_id": mine[-1] if mine else None,
        }

    def _page(self, request: Request) -> list[Payload] | str:
        """``GET /channels/{id}/messages``: up to ``limit`` messages, newest first."""
        query = request.query_params
        try:
            limit = int(query.get("limit", "50"))
            before, after, around = (int(query[k]) if k in query else None for k in _ANCHORS)
        except ValueError:
            return "Value is not snowflake."
        if not 1 <= limit <= 100:
            return "Must be between 1 and 100."
        channel = request.path_params["cid"]
        with self.lock:
            oldest_first = [dict(m) for m in self._channel.values() if m["channel_id"] == channel]
        if after is not None:
            page = [m for m in oldest_first if int(m["id"]) > after][:limit]
        elif before is not None:
            page = [m for m in oldest_first if int(m["id"]) < before][-limit:]
        elif around is not None:
            older = [m for m in oldest_first if int(m["id"]) < around][-(limit // 2) :]
            newer = [m for m in oldest_first if int(m["id"]) >= around][: limit - len(older)]
            page = older + newer
        else:
            page = oldest_first[-limit:]
        return page[::-1]

    def app(self) -> Starlette:
        async def interactions(request: Request) -> Response:
            if not self._authorised(request):
                return JSONResponse({"message": "401: Unauthorized", "code": 0}, status_code=401)
            body = await request.json()
            hang = False
            with self.lock:
                self.interaction_attempts += 1
                if self._limited(request.headers["authorization"]):
                    return _too_many_requests(self._retry_after)
                self.interactions.append(body)
                channel = str(body.get("channel_id"))
                self.in_flight[channel] += 1
                self.peak[channel] = max(self.peak[channel], self.in_flight[channel])
                status = self.interaction_status
                if status == 204 and self._hang_next > 0:
                    self._hang_next -= 1
                    self.hung += 1
                    hang = True
            if status != 204:
                return JSONResponse(
                    {"message": "Invalid Form Body", "code": 50035}, status_code=status
                )
            refusal = self.bot.on_interaction(body)
            if refusal is not None:
                return JSONResponse(refusal[1], status_code=refusal[0])
            if hang:
                await self._until_gone(request)
            return Response(status_code=204)

        async def attachments(request: Request) -> Response:
            if not self._authorised(request):
                return JSONResponse({"message": "401: Unauthorized"}, status_code=401)
            files = (await request.json())["files"]
            slots = []
            for item in files:
                path = f"{uuid.uuid4()}/{item['filename']}"
                slots.append(
                    {
                        "id": item["id"],
                        "upload_url": f"{self.url}/bucket/{path}?upload_id=fake",
                        "upload_filename": path,
                    }
                )
            return JSONResponse({"attachments": slots})

        async def bucket(request: Request) -> Response:
            data = await request.body()
            with self.lock:
                self.uploads[request.path_params["path"]] = data
            return Response(status_code=200)

        async def messages(request: Request) -> Response:
            if not self._authorised(request):
                return JSONResponse({"message": "401: Unauthorized"}, status_code=401)
            body = await request.json()
            with self.lock:
                self.messages.append(body)
            uploaded = body["attachments"][0]["uploaded_filename"]
            if uploaded not in self.uploads:
                return JSONResponse(
                    {"message": "Uploaded file not found", "code": 50146}, status_code=400
                )
            name = uploaded.rsplit("/", 1)[-1]
            return JSONResponse(
                {
                    "id": "1200000000000000009",
                    "channel_id": request.path_params["cid"],
                    "attachments": [{"id": "1", "filename": name, "url": self.cdn(name)}],
                }
            )

        async def cdn(request: Request) -> Response:
            with self.lock:
                self.cdn_downloads += 1
            return Response(self.cdn_image, media_type="image/png")

        async def me(request: Request) -> Response:
            caller = self._caller(request)
            if caller is None:
                return JSONResponse(UNAUTHORIZED, status_code=401)
            return JSONResponse(_bot_user() if caller == "bot" else self.user())

        async def application(request: Request) -> Response:
            if self._caller(request) != "bot":
                return JSONResponse(UNAUTHORIZED, status_code=401)
            return JSONResponse(_application(self.user()))

        async def gateway(request: Request) -> Response:
            return JSONResponse({"url": self.ws_url})

        async def gateway_bot(request: Request) -> Response:
            if self._caller(request) != "bot":
                return JSONResponse(UNAUTHORIZED, status_code=401)
            limit = {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}
            return JSONResponse({"url": self.ws_url, "shards": 1, "session_start_limit": limit})

        async def channel(request: Request) -> Response:
            if self._caller(request) is None:
                return JSONResponse(UNAUTHORIZED, status_code=401)
            if request.path_params["cid"] not in self.channel_ids():
                return JSONResponse(_UNKNOWN_CHANNEL, status_code=404)
            return JSONResponse(self._channel_object(request.path_params["cid"]))

        async def history(request: Request) -> Response:
            if self._caller(request) is None:
                return JSONResponse(UNAUTHORIZED, status_code=401)
            if request.path_params["cid"] not in self.channel_ids():
                return JSONResponse(_UNKNOWN_CHANNEL, status_code=404)
            page = self._page(request)
            if isinstance(page, str):
                invalid = {"message": "Invalid Form Body", "code": 50035, "errors": page}
                return JSONResponse(invalid, status_code=400)
            return JSONResponse(page)

        async def one_message(request: Request) -> Response:
            if self._caller(request) is None:
                return JSONResponse(UNAUTHORIZED, status_code=401)
            found = self.get_message(request.path_params["mid"])
            if found is None or request.path_params["cid"] != found["channel_id"]:
                return JSONResponse({"message": "Unknown Message", "code": 10008}, 404)
            return JSONResponse(found)

        async def unhandled(request: Request, exc: Exception) -> Response:
            status = exc.status_code if isinstance(exc, HTTPException) else 500
            with self.lock:
                self.unhandled.append(f"{request.method} {request.url.path}")
            return JSONResponse({"message": _DISCORD_ERRORS[status], "code": 0}, status)

        async def loop(request: Request) -> Response:
            self.loop = self.gateway.loop = asyncio.get_running_loop()
            return Response(status_code=204)

        api = "/api/v9"
        return Starlette(
            exception_handlers={404: unhandled, 405: unhandled},
            routes=[
                Route(f"{api}/interactions", interactions, methods=["POST"]),
                Route(f"{api}/channels/{{cid}}/attachments", attachments, methods=["POST"]),
                Route(f"{api}/channels/{{cid}}/messages", messages, methods=["POST"]),
                Route(f"{api}/channels/{{cid}}/messages", history, methods=["GET"]),
                Route(f"{api}/channels/{{cid}}/messages/{{mid}}", one_message, methods=["GET"]),
                Route(f"{api}/channels/{{cid}}", channel, methods=["GET"]),
                Route(f"{api}/users/@me", me, methods=["GET"]),
                Route(f"{api}/oauth2/applications/@me", application, methods=["GET"]),
                Route(f"{api}/gateway", gateway, methods=["GET"]),
                Route(f"{api}/gateway/bot", gateway_bot, methods=["GET"]),
                Route("/bucket/{path:path}", bucket, methods=["PUT"]),
                Route("/attachments/{cid}/{name}", cdn, methods=["GET"]),
                Route("/attachments/{cid}/{aid}/{name}", cdn, methods=["GET"]),
                Route("/ephemeral-attachments/{cid}/{aid}/{name}", cdn, methods=["GET"]),
                Route("/_fake/loop", loop, methods=["GET"]),
                WebSocketRoute("/gateway", self.gateway),
                WebSocketRoute("/gateway/resume", self.gateway),
            ],
        )

    def __enter__(self) -> FakeDiscord:
        self.server.__enter__()
        # learn the server's event loop, so knobs called from the test thread can hop onto it
        httpx.get(f"{self.url}/_fake/loop").raise_for_status()
        return self

    def __exit__(self, *exc: object) -> None:
        on_loop(self.loop, self._closed.set)
        self.gateway.close()
        self.server.__exit__(*exc)


_ANCHORS = ("before", "after", "around")
_DISCORD_ERRORS = {404: "404: Not Found", 405: "405: Method Not Allowed"}
_UNKNOWN_CHANNEL = {"message": "Unknown Channel", "code": 10003}


def _user(user_id: str, name: str, **extra: Any) -> Payload:
    return {
        "id": user_id,
        "username": name,
        "global_name": None,
        "discriminator": "0",
        "avatar": None,
        "avatar_decoration_data": None,
        "public_flags": 0,
        **extra,
    }


def _bot_user() -> Payload:
    return _user(
        BOT_ID, "mjcore-listener", bot=True, verified=True, mfa_enabled=False, flags=0, email=None
    )


def _application(owner: Payload) -> Payload:
    return {
        "id": BOT_ID,
        "name": "mjcore-listener",
        "icon": None,
        "description": "",
        "summary": "",
        "bot_public": False,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": 1 << 19,
        "owner": owner,
        "team": None,
        "bot": _bot_user(),
        "interactions_endpoint_url": None,
        "redirect_uris": [],
        "tags": [],
        "approximate_guild_count": 1,
    }


def _with_member(message: Payload) -> Payload:
    """Gateway message events carry the author's guild member; webhook messages do not."""
    if "webhook_id" in message:
        return message
    member = {"roles": [], "joined_at": message["timestamp"], "deaf": False, "mute": False}
    return {**message, "member": {**member, "flags": 0, "pending": False, "nick": None}}


def _too_many_requests(retry_after: float) -> JSONResponse:
    headers = {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": "a06de0de63f33ea0c5c1f1d6f5b7d8b2",
        "X-RateLimit-Scope": "user",
        "Via": "1.1 google",
    }
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
    return JSONResponse(body, status_code=429, headers=headers)


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return 1024, 1024


def grid_filename(trigger_id: str, msg_hash: str) -> str:
    """How Midjourney names a result file: user_prompt_<uuid>.png."""
    return f"gaosh_{trigger_id}a_red_fox_{msg_hash}.png"


def listener_event(
    fake: FakeDiscord,
    kind: str,
    trigger_id: str,
    message_id: int,
    content: str,
    *,
    msg_hash: str | None = None,
) -> dict[str, Any]:
    """What yokonsan's listener bot posts: ids as JSON numbers, discord.py attachment dicts."""
    attachments = []
    if msg_hash is not None:
        name = grid_filename(trigger_id, msg_hash)
        attachments.append(
            {
                "filename": name,
                "id": message_id + 1,
                "proxy_url": fake.cdn(name).replace("127.0.0.1", "localhost"),
                "size": len(fake.cdn_image),
                "url": fake.cdn(name),
                "spoiler": False,
                "height": 16,
                "width": 16,
                "content_type": "image/png",
            }
        )
    return {
        "type": kind,
        "id": message_id,
        "content": content,
        "attachments": attachments,
        "embeds": [],
        "trigger_id": trigger_id,
    }

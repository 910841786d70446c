"""A fake Discord: the real paths and payload shapes Midjourney's client traffic uses.

It records every interaction and serves uploads and CDN images, so tests can check
exactly what mjcore sent and feed back what the listener bot would have reported.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .images import png
from .loopback import LoopbackServer

TOKEN = "fake-user-token"
GUILD = "1100000000000000001"
CHANNEL = "1100000000000000002"


class FakeDiscord:
    """State shared between the server thread and the test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.interactions: list[dict[str, Any]] = []
        self.bad_auth = 0
        self.uploads: dict[str, bytes] = {}
        self.messages: list[dict[str, Any]] = []
        self.interaction_status = 204
        self.cdn_image = png(16, 16)
        self.server = LoopbackServer(self.app())
        self.url = self.server.url

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v9"

    def env(self) -> dict[str, str]:
        """Settings that point mjcore at this fake."""
        return {
            "MJCORE_DISCORD_API_URL": self.api_url,
            "MJCORE_DISCORD_USER_TOKEN": TOKEN,
            "MJCORE_DISCORD_GUILD_ID": GUILD,
            "MJCORE_DISCORD_CHANNEL_ID": CHANNEL,
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

    def _authorised(self, request: Request) -> bool:
        if request.headers.get("authorization") == TOKEN:
            return True
        with self.lock:
            self.bad_auth += 1
        return False

    def app(self) -> Starlette:
        async def interactions(request: Request) -> Response:
            if not self._authorised(request):
                return JSONResponse({"message": "401: Unauthorized", "code": 0}, status_code=401)
            body = await request.json()
            with self.lock:
                self.interactions.append(body)
                status = self.interaction_status
            if status == 204:
                return Response(status_code=204)
            return JSONResponse({"message": "Invalid Form Body", "code": 50035}, status_code=status)

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
                    "channel_id": CHANNEL,
                    "attachments": [{"id": "1", "filename": name, "url": self.cdn(name)}],
                }
            )

        async def cdn(request: Request) -> Response:
            return Response(self.cdn_image, media_type="image/png")

        return Starlette(
            routes=[
                Route("/api/v9/interactions", interactions, methods=["POST"]),
                Route("/api/v9/channels/{cid}/attachments", attachments, methods=["POST"]),
                Route("/api/v9/channels/{cid}/messages", messages, methods=["POST"]),
                Route("/bucket/{path:path}", bucket, methods=["PUT"]),
                Route("/attachments/{cid}/{name}", cdn, methods=["GET"]),
            ]
        )

    def __enter__(self) -> FakeDiscord:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


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

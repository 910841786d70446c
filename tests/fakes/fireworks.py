"""A fake Fireworks: the real workflow routes, headers and image bytes.

What it does is chosen by markers in the prompt, so tests running against one shared
server do not step on each other: ``[500]``, ``[429]``, ``[hang]``, ``[filtered]``,
``[malformed]``, ``[every2nd500]`` (every second request with that very prompt fails);
anything else gets a real PNG or JPEG as the Accept header asks.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .images import JPEG, png
from .loopback import LoopbackServer

API_KEY = "fw-test-key"
MODELS = "/inference/v1/workflows/accounts/fireworks/models"


class FakeFireworks:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.prompts: dict[str, int] = {}  # how often each prompt was asked for
        self.server = LoopbackServer(self.app())
        self.url = self.server.url

    @property
    def base_url(self) -> str:
        return f"{self.url}/inference/v1"

    def env(self, model: str = "flux-1-schnell-fp8") -> dict[str, str]:
        return {
            "MJCORE_FIREWORKS_BASE_URL": self.base_url,
            "MJCORE_FIREWORKS_API_KEY": API_KEY,
            "MJCORE_FIREWORKS_MODEL": model,
        }

    def seen(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)

    def _record(self, request: Request, body: Any) -> None:
        with self.lock:
            self.requests.append(
                {"path": request.url.path, "headers": dict(request.headers), "body": body}
            )

    def app(self) -> Starlette:
        async def text_to_image(request: Request) -> Response:
            body = await request.json()
            self._record(request, body)
            if request.headers.get("authorization") != f"Bearer {API_KEY}":
                return JSONResponse(
                    {
                        "error": {
                            "message": "The API key you provided is invalid.",
                            "code": "UNAUTHORIZED",
                        }
                    },
                    status_code=401,
                )
            prompt: str = body.get("prompt", "")
            with self.lock:
                self.prompts[prompt] = asked = self.prompts.get(prompt, 0) + 1
            if "[500]" in prompt or ("[every2nd500]" in prompt and asked % 2 == 0):
                return JSONResponse({"error": {"message": "internal error"}}, status_code=500)
            if "[429]" in prompt:
                return JSONResponse({"detail": "rate limit exceeded"}, status_code=429)
            if "[hang]" in prompt:
                await asyncio.sleep(10)
            seed = str(body.get("seed") or 424242)
            if "[malformed]" in prompt:
                return JSONResponse({"unexpected": True}, headers={"Seed": seed})
            accept = request.headers.get("accept", "")
            data, kind = (JPEG, "image/jpeg") if accept == "image/jpeg" else (png(), "image/png")
            reason = "CONTENT_FILTERED" if "[filtered]" in prompt else "SUCCESS"
            headers = {"Seed": seed, "Finish-Reason": reason, "X-Request-Id": f"fw-{uuid.uuid4()}"}
            return Response(data, media_type=kind, headers=headers)

        async def submit(request: Request) -> Response:
            body = await request.json()
            self._record(request, body)
            job = str(uuid.uuid4())
            with self.lock:
                self.jobs[job] = {"polls": 0, "body": body}
            return JSONResponse({"request_id": job})

        async def get_result(request: Request) -> Response:
            body = await request.json()
            self._record(request, body)
            with self.lock:
                job = self.jobs.get(body.get("id"))
                if job is not None:
                    job["polls"] += 1
            if job is None:
                return JSONResponse({"id": body.get("id"), "status": "Task not found"})
            prompt = job["body"]["prompt"]
            if job["polls"] < 2:
                status, result = "Pending", None
            elif "[filtered]" in prompt:
                status, result = "Content Moderated", None
            else:
                status = "Ready"
                fmt = job["body"].get("output_format", "png")
                result = {"sample": f"{self.url}/samples/{body['id']}.{fmt}"}
            return JSONResponse({"id": body["id"], "status": status, "result": result})

        async def sample(request: Request) -> Response:
            if request.path_params["name"].endswith(".jpeg"):
                return Response(JPEG, media_type="image/jpeg")
            return Response(png(), media_type="image/png")

        return Starlette(
            routes=[
                Route(f"{MODELS}/{{model}}/text_to_image", text_to_image, methods=["POST"]),
                Route(f"{MODELS}/{{model}}/get_result", get_result, methods=["POST"]),
                Route(f"{MODELS}/{{model}}", submit, methods=["POST"]),
                Route("/samples/{name}", sample, methods=["GET"]),
            ]
        )

    def __enter__(self) -> FakeFireworks:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

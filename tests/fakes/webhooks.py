"""A client's webhook receiver on loopback: it records every request and answers as told.

Per path: ``/fail3/...`` fails the first 3 attempts of each webhook-id (503) then answers
200; ``/gone/...`` answers 410; ``/hold/...`` keeps the first attempt of each webhook-id
open until :meth:`Receiver.release`; ``/flaky/...`` fails the first attempt of every
third webhook-id; anything else answers 200 at once.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import Any

from attrs import frozen
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .loopback import LoopbackServer


@frozen
class Received:
    path: str
    headers: dict[str, str]
    body: str
    status: int  # what we answered

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


class Receiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Received] = []
        self.attempts: Counter[str] = Counter()
        self.held = threading.Event()  # set: /hold answers (and stops holding)
        self.server = LoopbackServer(self._app())
        self.url = self.server.url

    def __enter__(self) -> Receiver:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.__exit__(*exc)

    def release(self) -> None:
        self.held.set()

    def seen(self, path_prefix: str = "/") -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def delivered(self, path_prefix: str = "/") -> list[Received]:
        """The requests answered 2xx."""
        return [r for r in self.seen(path_prefix) if 200 <= r.status < 300]

    def _answer(self, path: str, webhook_id: str) -> int:
        with self.lock:
            self.attempts[webhook_id] += 1
            attempt = self.attempts[webhook_id]
        if path.startswith("/fail3/"):
            return 503 if attempt <= 3 else 200
        if path.startswith("/gone/"):
            return 410
        if path.startswith("/flaky/"):
            return 503 if attempt == 1 and hash(webhook_id) % 3 == 0 else 200
        return 200

    def _app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = (await request.body()).decode()
            headers = dict(request.headers)
            webhook_id = headers.get("webhook-id", "")
            path = request.url.path
            if path.startswith("/hold/") and not self.held.is_set():
                with self.lock:
                    first = self.attempts[webhook_id] == 0
                    self.attempts[webhook_id] += 1
                if first:
                    self._keep(Received(path, headers, body, 0))
                    await asyncio.to_thread(self.held.wait, 30)
                    return Response(status_code=200)
                status = 200
            else:
                status = self._answer(path, webhook_id)
            self._keep(Received(path, headers, body, status))
            return Response(status_code=status)

        return Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])

    def _keep(self, received: Received) -> None:
        with self.lock:
            self.requests.append(received)

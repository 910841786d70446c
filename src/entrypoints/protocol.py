"""uvicorn's httptools protocol with the two bounds uvicorn lacks, against slowloris.

uvicorn closes a kept-alive connection that stays silent (``timeout_keep_alive``) and
refuses requests over ``limit_concurrency``, but a connection that never sends a byte, or
sends its request head one byte at a time, is kept forever, and httptools takes a head of
any size. Here a request head must be complete within ``MJCORE_HEADER_TIMEOUT_S`` of the
connection opening (or of its first byte, on a kept-alive connection), else the
connection is closed; and a head over ``MJCORE_MAX_HEADER_BYTES`` is answered 431.
A body sent slowly is not bounded here (see README, "Security": the reverse proxy).
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import Settings

TOO_LARGE = b"request header fields too large"


@functools.cache
def head_limits() -> tuple[float, int]:
    """(seconds to send a request head, its most bytes), from the environment like the
    app's settings (each uvicorn worker process reads them once)."""
    settings = Settings.from_env(os.environ)
    return settings.header_timeout_s, settings.max_header_bytes


class HeadTooLarge(Exception):
    """The request line and headers are over ``MJCORE_MAX_HEADER_BYTES``."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that bounds how long and how large a request head may be."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout, self.max_head_bytes = head_limits()
        self.head_timer: asyncio.TimerHandle | None = None  # running while a head is awaited
        self.head_bytes = 0
        self.head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.head_timer is None or self.transport.is_closing():
            return  # the head is complete (or no request has begun): not a head's bytes
        # httptools keeps a header it has not seen the end of: count what arrives instead
        self.head_bytes += len(data)
        if self.head_bytes > self.max_head_bytes:
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_clock()  # still running if this is the connection's first request

    def on_headers_complete(self) -> None:
        self._stop_head_clock()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:  # a whole head that came in one read
            self.head_too_large = True
            raise HeadTooLarge()  # httptools stops; uvicorn answers through send_400_response
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self.head_too_large:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self._stop_head_clock()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(TOO_LARGE)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + TOO_LARGE
        )
        self.transport.close()

    def _start_head_clock(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        self.head_bytes = 0
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

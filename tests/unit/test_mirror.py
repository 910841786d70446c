"""Copying result images: only from allowed hosts, never into our own network, bounded."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from adapters.images import HttpImageMirror, LocalImageStore, MirrorPolicy

from ..fakes.images import png
from ..fakes.loopback import LoopbackServer

CDN = "https://cdn.discordapp.com/attachments/1/2/fox_600f88ff-2147-40ad-83e4-50992c96aadb.png"


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        (CDN, True),
        ("https://media.discordapp.net/attachments/1/2/x.png?ex=1", True),
        ("http://cdn.discordapp.com/attachments/1/2/x.png", False),  # https only
        ("file:///etc/passwd", False),
        ("javascript:alert(1)", False),
        ("https://evil.example/x.png", False),
        ("https://cdn.discordapp.com.evil.example/x.png", False),
        ("http://127.0.0.1:9/x.png", False),
        ("not a url at all", False),
    ],
)
def test_finding_5_only_allowed_https_hosts_are_trusted(url: str, trusted: bool) -> None:
    assert MirrorPolicy().trusted(url) is trusted


def test_finding_5_an_origin_named_in_full_is_trusted_as_named() -> None:
    policy = MirrorPolicy(("http://127.0.0.1:8080",))
    assert policy.trusted("http://127.0.0.1:8080/a.png")
    assert not policy.trusted("http://127.0.0.1:8081/a.png")
    assert not policy.trusted("https://127.0.0.1:8080/a.png")


def _store(tmp_path: Path) -> LocalImageStore:
    return LocalImageStore(tmp_path / "images", "http://ours")


async def test_finding_2_a_host_name_that_resolves_into_our_network_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def private(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port))]

    def no_request(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be fetched")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", private)
    async with httpx.AsyncClient(transport=httpx.MockTransport(no_request)) as client:
        assert await HttpImageMirror(client, _store(tmp_path)).mirror(CDN) is None


class _Origin:
    """A loopback image host: a real image, a huge one, or one that drips."""

    def __init__(self) -> None:
        self.served = 0
        self.requests = 0

        async def image(request: Request) -> Response:
            self.requests += 1
            return Response(png(), media_type="image/png")

        async def huge(request: Request) -> Response:
            self.requests += 1

            async def body() -> AsyncIterator[bytes]:
                for _ in range(10_000):  # 640 MB if anyone read it all
                    self.served += 65536
                    yield b"\x89PNG\r\n\x1a\n" + bytes(65528)
                    await asyncio.sleep(0.001)  # ~60 MB/s: the reader, not the writer, decides

            return StreamingResponse(body(), media_type="image/png")

        async def drip(request: Request) -> Response:
            self.requests += 1

            async def body() -> AsyncIterator[bytes]:
                for _ in range(1000):
                    yield b"x"
                    await asyncio.sleep(0.05)

            return StreamingResponse(body(), media_type="image/png")

        routes = [Route("/image.png", image), Route("/huge.png", huge), Route("/drip.png", drip)]
        self.server = LoopbackServer(Starlette(routes=routes))
        self.url = self.server.url


@pytest.fixture
def origin() -> Iterator[_Origin]:
    host = _Origin()
    with host.server:
        yield host


@asynccontextmanager
async def _mirror(tmp_path: Path, origin: _Origin, **policy: Any) -> AsyncIterator[HttpImageMirror]:
    async with httpx.AsyncClient() as client:
        yield HttpImageMirror(client, _store(tmp_path), MirrorPolicy((origin.url,), **policy))


async def test_an_allowed_image_is_copied(tmp_path: Path, origin: _Origin) -> None:
    async with _mirror(tmp_path, origin) as mirror:
        copied = await mirror.mirror(f"{origin.url}/image.png")
    assert copied is not None and copied.startswith("http://ours/images/")


async def test_finding_2_the_byte_cap_is_counted_while_the_bytes_arrive(
    tmp_path: Path, origin: _Origin
) -> None:
    async with _mirror(tmp_path, origin, max_bytes=1_000_000) as mirror:
        assert await mirror.mirror(f"{origin.url}/huge.png") is None
    assert origin.served < 20_000_000  # stopped near the cap, not after 640 MB
    assert not (tmp_path / "images").exists() or not any((tmp_path / "images").iterdir())


async def test_finding_2_one_deadline_bounds_a_slow_drip(tmp_path: Path, origin: _Origin) -> None:
    started = time.monotonic()
    async with _mirror(tmp_path, origin, deadline_s=0.5) as mirror:
        assert await mirror.mirror(f"{origin.url}/drip.png") is None
    assert time.monotonic() - started < 2

"""Findings of the security review (issue #9) measured against a real ``mjcore serve`` on
loopback: memory, disk, latency and sockets are what the findings were about."""

from __future__ import annotations

import http.client
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from ..measure import MiB, Sampler, rss_bytes
from ..servers import Served, mjcore_serve


def _connect(served: Served) -> socket.socket:
    url = urlsplit(served.url)
    return socket.create_connection((url.hostname, url.port), timeout=30)


def _response(sock: socket.socket) -> tuple[int, bytes]:
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    return answer.status, answer.read()


def _get(served: Served, path: str) -> int:
    connection = http.client.HTTPConnection(urlsplit(served.url).netloc, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def _head(path: str, framing: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: mjcore\r\nContent-Type: application/json\r\n"
        f"{framing}\r\n\r\n"
    ).encode()


def _stream(sock: socket.socket, total: int, chunked: bool) -> None:
    block = b" " * MiB
    for _ in range(total // MiB):
        sock.sendall(b"100000\r\n" + block + b"\r\n" if chunked else block)
    if chunked:
        sock.sendall(b"0\r\n\r\n")


def test_finding_3_a_300_mb_login_body_keeps_the_server_under_200_mb(tmp_path: Path) -> None:
    total = 300 * MiB
    with mjcore_serve({"MJCORE_LOG_LEVEL": "WARNING"}, tmp_path) as served:
        sampler = Sampler(lambda: rss_bytes(served.pid))
        with sampler.running():
            # chunked: read and counted up to the cap, then 413; the rest is drained unread
            with _connect(served) as sock:
                sock.sendall(_head("/api/login", "Transfer-Encoding: chunked"))
                _stream(sock, total, chunked=True)
                chunked_status, chunked_body = _response(sock)
            # declared: refused from the headers alone, before a byte of the body is sent
            with _connect(served) as sock:
                sock.sendall(_head("/api/login", f"Content-Length: {total}"))
                sock.settimeout(5)
                try:
                    declared_status, declared_body = _response(sock)
                except TimeoutError:  # the server waits for the body it should refuse
                    declared_status, declared_body = 0, b""
                _stream(sock, total, chunked=False)  # a client that sends it anyway
        healthy = _get(served, "/healthz")

    print(
        f"\nRSS during two 300 MB /api/login bodies: first {sampler.first / MiB:.0f} MiB,"
        f" peak {sampler.peak / MiB:.0f} MiB ({sampler.samples} samples)"
    )
    assert chunked_status == 413 and b'"error"' in chunked_body
    assert declared_status == 413 and b'"error"' in declared_body
    assert sampler.peak < 200 * MiB
    assert healthy == 200


def _drain(served: Served, path: str) -> tuple[int, int, str]:
    """GET ``path`` and read the body 1 MiB at a time: status, bytes, Cache-Control."""
    connection = http.client.HTTPConnection(urlsplit(served.url).netloc, timeout=60)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        size = 0
        while chunk := answer.read(MiB):
            size += len(chunk)
        return answer.status, size, answer.getheader("x-content-type-options", "")
    finally:
        connection.close()


def test_finding_10_ten_concurrent_gets_of_a_40_mb_image_do_not_load_it_whole(
    tmp_path: Path,
) -> None:
    size = 40 * MiB
    images = tmp_path / "images"
    images.mkdir()
    name = "B" * 32 + ".png"
    with (images / name).open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.truncate(size)
    with mjcore_serve({"MJCORE_LOG_LEVEL": "WARNING"}, tmp_path) as served:
        assert _drain(served, f"/images/{name}")[0] == 200  # warm: first-request imports
        sampler = Sampler(lambda: rss_bytes(served.pid))
        with sampler.running(), ThreadPoolExecutor(10) as pool:
            fetched = list(pool.map(lambda _: _drain(served, f"/images/{name}"), range(10)))

    growth = sampler.peak - sampler.first
    print(
        f"\nRSS serving a 40 MB image 10x at once: first {sampler.first / MiB:.0f} MiB,"
        f" peak {sampler.peak / MiB:.0f} MiB (+{growth / MiB:.1f} MiB)"
    )
    assert fetched == [(200, size, "nosniff")] * 10
    assert growth < 40 * MiB  # less than one copy of the file; the old code held ten

"""A small HTTP/1.1 keep-alive load generator on raw asyncio sockets (N connections)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from attrs import frozen


@frozen
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _one_connection(
    port: int,
    request: bytes,
    warm_until: float,
    stop_at: float,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            finished = time.perf_counter()
            if started >= warm_until:
                latencies.append(finished - started)
                statuses[int(head[9:12])] += 1
    finally:
        writer.close()


async def _run(
    port: int, request: bytes, connections: int, warmup: float, seconds: float
) -> Result:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    start = time.perf_counter()
    warm_until, stop_at = start + warmup, start + warmup + seconds
    await asyncio.gather(
        *(
            _one_connection(port, request, warm_until, stop_at, latencies, statuses)
            for _ in range(connections)
        )
    )
    latencies.sort()
    count = len(latencies)
    return Result(
        requests=count,
        seconds=seconds,
        p50_ms=latencies[count // 2] * 1000 if count else 0.0,
        p99_ms=latencies[min(count - 1, int(count * 0.99))] * 1000 if count else 0.0,
        statuses=dict(statuses),
    )


def run(port: int, request: bytes, connections: int, warmup: float, seconds: float) -> Result:
    return asyncio.run(_run(port, request, connections, warmup, seconds))

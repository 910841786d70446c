"""Start real server processes for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

MJCORE = str(Path(sys.executable).parent / "mjcore")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mjcore_serve(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 30.0
) -> Iterator[str]:
    """Run ``mjcore serve`` on a free loopback port until /healthz answers; yield its URL."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
    log = (cwd / f"serve-{port}.log").open("w")
    process = subprocess.Popen(
        [MJCORE, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env=base | env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {(cwd / log.name).read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server did not become healthy")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

"""Start real ``mjcore serve`` processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from attrs import frozen

MJCORE = str(Path(sys.executable).parent / "mjcore")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@frozen
class Served:
    url: str
    env: dict[str, str]
    log: Path
    pid: int

    @property
    def database_url(self) -> str:
        return self.env["MJCORE_DATABASE_URL"]


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"server did not become healthy: {log.read_text()}")
        time.sleep(0.05)


@contextmanager
def mjcore_serve(
    env: dict[str, str], cwd: Path, *args: str, port: int | None = None, timeout: float = 30.0
) -> Iterator[Served]:
    """Run ``mjcore serve`` on a loopback port until /healthz answers.

    ``MJCORE_PUBLIC_URL`` defaults to the server's own address. On exit the process
    gets SIGTERM (a clean shutdown); tests that want a crash kill it themselves.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
    full = {"MJCORE_PUBLIC_URL": url, "MJCORE_IMAGE_DIR": str(cwd / "images")} | env
    log = cwd / f"serve-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [MJCORE, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=base | full,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(url, process, log, timeout)
        yield Served(url, full, log, process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

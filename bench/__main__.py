"""``python -m bench``: measure mjcore against the bare framework and the storage ceiling.

Every figure comes from this one run on this machine: requests/s, p50/p99 latency and
the server's peak RSS, and each mjcore endpoint as a ratio of its reference point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from . import load

ROOT = Path(__file__).resolve().parents[1]
MJCORE = str(Path(sys.executable).parent / "mjcore")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def process(
    argv: list[str], env: dict[str, str], probe: str, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server; wait until ``probe`` answers at all."""
    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{argv} exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            try:
                httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{argv} did not start") from None
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def uvicorn(factory: str, port: int, env: dict[str, str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MJCORE_", "BENCH_"))}
    return env | {"PYTHONPATH": str(ROOT)} | extra


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.rows: list[dict[str, Any]] = []

    def measure(
        self, name: str, port: int, pid: int, request: bytes, reference: str | None
    ) -> dict[str, Any]:
        result = load.run(port, request, self.args.connections, self.args.warmup, self.args.seconds)
        row = {
            "name": name,
            "rate": result.rate,
            "p50": result.p50_ms,
            "p99": result.p99_ms,
            "rss": peak_rss_mb(pid),
            "statuses": result.statuses,
            "reference": reference,
        }
        self.rows.append(row)
        ok = sum(n for s, n in result.statuses.items() if 200 <= s < 300)
        print(
            f"{name:38} {result.rate:9.0f} req/s  p50 {result.p50_ms:6.1f} ms"
            f"  p99 {result.p99_ms:6.1f} ms  rss {row['rss']:6.1f} MB  2xx {ok}/{result.requests}",
            flush=True,
        )
        return row

    def rate_of(self, name: str) -> float:
        return float(next(r["rate"] for r in self.rows if r["name"] == name))


async def _prepare(database_url: str, base_url: str, fireworks: bool) -> dict[str, Any]:
    """An account with a key, a task to read, and (optionally) a JWT user with credits."""
    from entrypoints.bootstrap import open_store
    from mjcore.clock import system_clock
    from mjcore.services import accounts, codes

    store = await open_store(database_url, 2)
    try:
        await store.migrate()
        name = f"bench_{os.getpid()}_{time.time_ns()}"
        created = await accounts.create_account(store, system_clock, name, 2_000_000_000)
        [code] = await codes.issue_codes(store, system_clock, 1_000_000, 1)
    finally:
        await store.close()
    key = {"Authorization": f"Bearer {created.app_key}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        first = await client.post("/v1/api/trigger/imagine", json={"prompt": "a fox"}, headers=key)
        prepared = {"key": key, "task_id": first.json()["task_id"]}
        if fireworks:
            login = {"username": f"{name}_img", "password": "bench-password"}
            await client.post("/api/register", json=login)
            token = (await client.post("/api/login", json=login)).json()["token"]
            jwt = {"Authorization": f"Bearer {token}"}
            await client.post("/api/redeem", json={"code": code.code}, headers=jwt)
            prepared["jwt"] = jwt
    return prepared


def run(args: argparse.Namespace) -> Bench:
    workdir = Path(tempfile.mkdtemp(prefix="mjcore-bench-"))
    bench = Bench(args, workdir)
    discord_port, fireworks_port = free_port(), free_port()
    fake = [sys.executable, "-m", "bench.fakes"]
    with (
        process([*fake, "discord", str(discord_port)], clean_env(), "/", discord_port),
        process([*fake, "fireworks", str(fireworks_port)], clean_env(), "/", fireworks_port),
    ):
        port = free_port()
        with process(uvicorn("bench.apps:bare", port, {}), clean_env(), "/", port) as proc:
            bench.measure(
                "bare Starlette GET /", port, proc.pid, load.request_bytes("GET", "/"), None
            )

        for store, url in args.stores.items():
            if store == "sqlite":
                url = f"sqlite:///{workdir / 'ceiling.db'}"
            port = free_port()
            env = clean_env(BENCH_DATABASE_URL=url)
            with process(uvicorn("bench.apps:ceiling", port, env), env, "/nothing", port) as proc:
                request = load.request_bytes("POST", "/", b"{}")
                bench.measure(f"ceiling: debit+journal ({store})", port, proc.pid, request, None)

        for store, url in args.stores.items():
            if store == "sqlite":
                url = f"sqlite:///{workdir / 'mjcore.db'}"
            port = free_port()
            env = clean_env(
                MJCORE_DATABASE_URL=url,
                MJCORE_PUBLIC_URL=f"http://127.0.0.1:{port}",
                MJCORE_IMAGE_DIR=str(workdir / "images"),
                MJCORE_LOG_LEVEL="WARNING",
                MJCORE_MJ_CONCURRENCY=str(args.mj_concurrency),
                MJCORE_MJ_QUEUE_SIZE="100000",
                MJCORE_DISCORD_API_URL=f"http://127.0.0.1:{discord_port}/api/v9",
                MJCORE_DISCORD_USER_TOKEN="fake-user-token",
                MJCORE_DISCORD_GUILD_ID="1",
                MJCORE_DISCORD_CHANNEL_ID="2",
                MJCORE_FIREWORKS_BASE_URL=f"http://127.0.0.1:{fireworks_port}/inference/v1",
                MJCORE_FIREWORKS_API_KEY="fw-test-key",
            )
            argv = [MJCORE, "serve", "--host", "127.0.0.1", "--port", str(port)]
            with process(argv, env, "/healthz", port) as proc:
                ready = asyncio.run(_prepare(url, f"http://127.0.0.1:{port}", store == "sqlite"))
                body = json.dumps({"prompt": "a red fox in the snow"}).encode()
                imagine = load.request_bytes("POST", "/v1/api/trigger/imagine", body, ready["key"])
                bench.measure(
                    f"mjcore POST imagine ({store})",
                    port,
                    proc.pid,
                    imagine,
                    f"ceiling: debit+journal ({store})",
                )
                if store == "sqlite":
                    path = f"/v1/api/trigger/task/{ready['task_id']}"
                    task = load.request_bytes("GET", path, headers=ready["key"])
                    bench.measure(
                        "mjcore GET task/{id} (sqlite)",
                        port,
                        proc.pid,
                        task,
                        "bare Starlette GET /",
                    )
                    body = json.dumps({"prompt": "a lighthouse"}).encode()
                    generate = load.request_bytes("POST", "/api/generate", body, ready["jwt"])
                    bench.measure(
                        "mjcore POST /api/generate (sqlite)",
                        port,
                        proc.pid,
                        generate,
                        "ceiling: debit+journal (sqlite)",
                    )
    shutil.rmtree(workdir, ignore_errors=True)
    return bench


def markdown(bench: Bench, args: argparse.Namespace) -> str:
    lines = [
        f"{args.connections} connections, {args.seconds:g} s measured after {args.warmup:g} s"
        " warm-up, one uvicorn worker per server.",
        "",
        "| endpoint | req/s | p50 ms | p99 ms | peak RSS MB | reference | ratio |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in bench.rows:
        ratio, reference = "", ""
        if row["reference"]:
            reference = row["reference"]
            ratio = f"{row['rate'] / bench.rate_of(reference):.2f}"
        cells = [
            row["name"],
            f"{row['rate']:.0f}",
            f"{row['p50']:.1f}",
            f"{row['p99']:.1f}",
            f"{row['rss']:.0f}",
            reference,
            ratio,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--mj-concurrency",
        type=int,
        default=3,
        help="Midjourney slots (default 3): they fill at once, so imagine measures admission"
        " (auth, debit, ledger, task, queue), as the ceiling measures debit + journal",
    )
    parser.add_argument(
        "--mysql", default=os.environ.get("MJCORE_TEST_MYSQL_URL"), help="DSN, or unset to skip"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("MJCORE_TEST_POSTGRES_URL"),
        help="DSN, or unset to skip",
    )
    args = parser.parse_args()
    args.stores = {"sqlite": ""}
    if args.mysql:
        args.stores["mysql"] = args.mysql
    if args.postgres:
        args.stores["postgres"] = args.postgres
    bench = run(args)
    print()
    print(markdown(bench, args))


if __name__ == "__main__":
    main()

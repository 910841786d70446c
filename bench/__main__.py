"""``python -m bench``: measure mjcore against the bare framework and the storage ceiling.

Every figure comes from this one run on this machine: requests/s, p50/p99 latency and
the server's peak RSS, and each mjcore endpoint as a ratio of its reference point.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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
    """The process's peak RSS, or its largest worker's (``--workers``: uvicorn's
    supervisor serves nothing)."""
    peaks = [
        int(line.split()[1]) / 1024
        for one in (pid, *_children(pid))
        for line in Path(f"/proc/{one}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    ]
    return max(peaks, default=0.0)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@contextmanager
def process(
    argv: list[str], env: dict[str, str], probe: str, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server; wait until ``probe`` answers at all. Its output goes to a file: a
    pipe nobody reads fills up and stops a server that logs (a WARNING per job would)."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"{argv} exited: {log.read().decode(errors='replace')}")
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


def runtime() -> str:
    """What the servers run on: uvicorn takes uvloop when installed; mjcore serve always
    parses HTTP with httptools (entrypoints.protocol)."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"Python {sys.version.split()[0]}, event loop {loop}, HTTP parser {parser}"


def mjcore_env(
    url: str, port: int, workdir: Path, discord_port: int, **extra: str
) -> dict[str, str]:
    return clean_env(
        MJCORE_DATABASE_URL=url,
        MJCORE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        MJCORE_IMAGE_DIR=str(workdir / "images"),
        MJCORE_LOG_LEVEL="WARNING",
        MJCORE_MJ_QUEUE_SIZE="100000",
        MJCORE_DISCORD_API_URL=f"http://127.0.0.1:{discord_port}/api/v9",
        MJCORE_DISCORD_USER_TOKEN="fake-user-token",
        MJCORE_DISCORD_GUILD_ID="1",
        MJCORE_DISCORD_CHANNEL_ID="2",
        MJCORE_CALLBACK_SECRET=CALLBACK_SECRET,
        **extra,
    )


RELAY = "bare Starlette POST / + the fake Fireworks call"
CALLBACK_SECRET = "bench-callback-secret"  # noqa: S105 (loopback only)
IMAGINE = json.dumps({"prompt": "a red fox in the snow"}).encode()


async def _fresh_schema(url: str) -> None:
    from tests.support import drop_all

    from adapters.sql.store import SqlStore
    from entrypoints.bootstrap import open_store

    store = await open_store(url, 2)
    try:
        assert isinstance(store, SqlStore)
        await drop_all(store)
    finally:
        await store.close()


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

        port = free_port()
        fireworks = f"http://127.0.0.1:{fireworks_port}/inference/v1"
        env = clean_env(BENCH_FIREWORKS_URL=fireworks)
        with process(uvicorn("bench.apps:relay", port, env), env, "/nothing", port) as proc:
            body = json.dumps({"prompt": "a lighthouse"}).encode()
            request = load.request_bytes("POST", "/", body)
            bench.measure(RELAY, port, proc.pid, request, None)

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
            ceiling = f"ceiling: debit+journal ({store})"
            for workers in (1, 2) if store != "sqlite" else (1,):
                port = free_port()
                env = mjcore_env(
                    url,
                    port,
                    workdir,
                    discord_port,
                    MJCORE_MJ_CONCURRENCY=str(args.mj_concurrency),
                    MJCORE_FIREWORKS_BASE_URL=f"http://127.0.0.1:{fireworks_port}/inference/v1",
                    MJCORE_FIREWORKS_API_KEY="fw-test-key",
                )
                argv = [MJCORE, "serve", "--host", "127.0.0.1", "--port", str(port)]
                argv += ["--workers", str(workers)]
                tag = f"{store}" if workers == 1 else f"{store}, 2 workers"
                with process(argv, env, "/healthz", port) as proc:
                    ready = asyncio.run(
                        _prepare(url, f"http://127.0.0.1:{port}", store == "sqlite")
                    )
                    imagine = load.request_bytes(
                        "POST", "/v1/api/trigger/imagine", IMAGINE, ready["key"]
                    )
                    path = f"/v1/api/trigger/task/{ready['task_id']}"
                    task = load.request_bytes("GET", path, headers=ready["key"])
                    one = f"({store})"
                    bench.measure(
                        f"mjcore POST imagine ({tag})",
                        port,
                        proc.pid,
                        imagine,
                        ceiling if workers == 1 else f"mjcore POST imagine {one}",
                    )
                    bench.measure(
                        f"mjcore GET task/{{id}} ({tag})",
                        port,
                        proc.pid,
                        task,
                        "bare Starlette GET /" if workers == 1 else f"mjcore GET task/{{id}} {one}",
                    )
                    if store == "sqlite":
                        body = json.dumps({"prompt": "a lighthouse"}).encode()
                        generate = load.request_bytes("POST", "/api/generate", body, ready["jwt"])
                        bench.measure(
                            "mjcore POST /api/generate (sqlite)", port, proc.pid, generate, RELAY
                        )
            dispatching(bench, args, store, url, workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    return bench


def dispatching(
    bench: Bench, args: argparse.Namespace, store: str, url: str, workdir: Path
) -> None:
    """imagine while every job is sent to Discord and ended through the callback: the
    steady state of a busy server (admission, the interaction, the end, the next job)."""
    if store == "sqlite":
        url = f"sqlite:///{workdir / 'dispatching.db'}"
    else:  # a fresh schema: the other rows left thousands of jobs waiting
        asyncio.run(_fresh_schema(url))
    port, discord_port = free_port(), free_port()
    callback = f"http://127.0.0.1:{port}/v1/api/trigger/midjourney/result"
    fake = [sys.executable, "-m", "bench.fakes", "discord-ending", str(discord_port)]
    env = mjcore_env(
        url,
        port,
        workdir,
        discord_port,
        MJCORE_MJ_CONCURRENCY="1000",
        # each result image is copied from the fake's CDN, as Discord's would be
        MJCORE_MIRROR_HOSTS=f"http://127.0.0.1:{discord_port}",
    )
    argv = [MJCORE, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with (
        process([*fake, callback, CALLBACK_SECRET], clean_env(), "/", discord_port),
        process(argv, env, "/healthz", port) as proc,
    ):
        ready = asyncio.run(_prepare(url, f"http://127.0.0.1:{port}", False))
        imagine = load.request_bytes("POST", "/v1/api/trigger/imagine", IMAGINE, ready["key"])
        bench.measure(
            f"mjcore POST imagine, dispatching ({store})",
            port,
            proc.pid,
            imagine,
            f"ceiling: debit+journal ({store})",
        )
        path = f"/v1/api/trigger/task/{ready['task_id']}"
        task = load.request_bytes("GET", path, headers=ready["key"])
        bench.measure(
            f"mjcore GET task/{{id}}, dispatching ({store})",
            port,
            proc.pid,
            task,
            "bare Starlette GET /",
        )


def markdown(bench: Bench, args: argparse.Namespace) -> str:
    lines = [
        f"{args.connections} connections, {args.seconds:g} s measured after {args.warmup:g} s"
        " warm-up, one uvicorn worker per server unless a row says 2. " + runtime() + ".",
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

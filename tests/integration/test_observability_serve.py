"""``mjcore serve --workers 2``, a real process tree: every worker logs (JSON, request ids),
one scrape sums what both workers counted, and a worker that dies is forgotten by the
live gauges but not by the counters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..servers import Served, mjcore_serve


def logged(served: Served) -> list[dict[str, Any]]:
    """The server's log (stdout and stderr), every line a JSON object (no terminal)."""
    return [json.loads(line) for line in served.log.read_text().splitlines() if line]


def readyz_count(served: Served) -> float:
    text = httpx.get(f"{served.url}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "mjcore_http_requests_total" and s.labels["route"] == "/readyz"
    )


async def _burst(url: str, first: int, count: int) -> None:
    """``count`` requests at once on as many connections: the kernel spreads them."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        answers = await asyncio.gather(
            *(
                client.get("/readyz", headers={"X-Request-ID": f"spread-{first + i}"})
                for i in range(count)
            )
        )
    assert all(a.status_code == 200 for a in answers)


def spread_over_workers(served: Served, workers: int) -> int:
    """Send bursts until every worker has answered some; how many requests were sent."""
    sent = 0
    for _ in range(10):
        asyncio.run(_burst(served.url, sent, 20))
        sent += 20
        time.sleep(0.2)  # the workers' lines reach the file
        pids = {  # the probes that waited for the server may have reached the other one
            line["pid"]
            for line in logged(served)
            if line["event"] == "http.request" and line.get("request_id", "").startswith("spread-")
        }
        if len(pids) >= workers:
            return sent
    raise AssertionError(f"only {pids} answered")


def test_two_workers_log_as_json_with_request_ids_and_one_scrape_sums_both(
    tmp_path: Path,
) -> None:
    with mjcore_serve({"MJCORE_LOG_LEVEL": "INFO"}, tmp_path, "--workers", "2") as served:
        sent = spread_over_workers(served, 2)
        counted = readyz_count(served)
        lines = logged(served)
        [start] = [line for line in lines if line["event"] == "serve.start"]
        metrics_dir = Path(start["metrics_dir"])
        assert metrics_dir.is_dir()

    ours = [
        line
        for line in lines
        if line["event"] == "http.request" and line.get("request_id", "").startswith("spread-")
    ]
    assert counted == sent
    assert sorted(line["request_id"] for line in ours) == sorted(f"spread-{i}" for i in range(sent))
    assert len({line["pid"] for line in ours}) == 2
    uvicorn_pids = {line["pid"] for line in lines if line["logger"] == "uvicorn.error"}
    assert {line["pid"] for line in ours} < uvicorn_pids  # uvicorn's lines, each worker's too
    assert not metrics_dir.exists()  # the temporary directory went with the server


def test_a_dead_worker_leaves_its_counts_and_its_live_gauge_goes(tmp_path: Path) -> None:
    with mjcore_serve({}, tmp_path, "--workers", "2") as served:
        sent = spread_over_workers(served, 2)
        lines = logged(served)
        [start] = [line for line in lines if line["event"] == "serve.start"]
        metrics_dir = Path(start["metrics_dir"])
        victim = next(line["pid"] for line in lines if line["event"] == "http.request")
        assert (metrics_dir / f"gauge_livesum_{victim}.db").exists()

        os.kill(victim, signal.SIGKILL)  # uvicorn starts another worker in its place
        deadline = time.monotonic() + 20
        while (metrics_dir / f"gauge_livesum_{victim}.db").exists():
            assert time.monotonic() < deadline, "the dead worker's live gauge stayed"
            time.sleep(0.2)
        gone = [line for line in logged(served) if line["event"] == "metrics.worker_gone"]

        assert readyz_count(served) == sent  # what the dead worker counted is still there
        assert (metrics_dir / f"counter_{victim}.db").exists()
    assert [line["worker_pid"] for line in gone] == [victim]

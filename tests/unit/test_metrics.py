"""Metrics counted from events, whatever the log level; multiprocess bookkeeping."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from entrypoints.metrics import Metrics, bury_dead_workers, counting, prepare_directory
from entrypoints.server import multiprocess_metrics
from mjcore import events


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_events_are_counted_even_when_the_log_prints_only_errors() -> None:
    metrics = Metrics.create()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with counting(metrics):
            events.provider_call("discord", "interaction", duration_s=0.2, outcome="ok", status=204)
            events.provider_call(
                "fireworks", "text_to_image", duration_s=1.5, outcome="http_error", status=503
            )
            events.webhook_delivery("delivered", task_id="t1")
            events.webhook_delivery("retry", task_id="t2", status=500)
        events.webhook_delivery("delivered")  # after the app: not counted
    finally:
        root.setLevel(level)

    interaction = {"provider": "discord", "operation": "interaction"}
    assert _value(metrics, "mjcore_provider_request_duration_seconds_count", **interaction) == 1
    assert _value(metrics, "mjcore_provider_request_duration_seconds_sum", **interaction) == 0.2
    fireworks = {"provider": "fireworks", "operation": "text_to_image", "kind": "503"}
    assert _value(metrics, "mjcore_provider_errors_total", **fireworks) == 1
    assert _value(metrics, "mjcore_webhook_deliveries_total", outcome="delivered") == 1
    assert _value(metrics, "mjcore_webhook_deliveries_total", outcome="retry") == 1
    assert logging.getLogger("mjcore").level == logging.NOTSET  # given back


def test_two_apps_count_in_registries_of_their_own() -> None:
    first, second = Metrics.create(), Metrics.create()
    first.request_done("GET", "/healthz", 200, 0.01)
    first.request_done("BREW", "/healthz", 418, 0.01)  # odd methods are one label, not many

    assert (
        _value(first, "mjcore_http_requests_total", method="GET", route="/healthz", status="2xx")
        == 1
    )
    assert (
        _value(first, "mjcore_http_requests_total", method="other", route="/healthz", status="4xx")
        == 1
    )
    assert (
        _value(second, "mjcore_http_requests_total", method="GET", route="/healthz", status="2xx")
        == 0
    )


def test_a_dead_workers_live_gauge_is_buried_and_its_counters_kept(tmp_path: Path) -> None:
    for name in ("gauge_livesum_11.db", "gauge_livesum_22.db", "counter_11.db"):
        (tmp_path / name).write_bytes(b"")

    buried = bury_dead_workers(tmp_path, alive=lambda pid: pid == 22)

    assert buried == [11]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_11.db", "gauge_livesum_22.db"]


def test_an_earlier_runs_files_are_cleared_at_start(tmp_path: Path) -> None:
    (tmp_path / "counter_5.db").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("not ours")
    prepare_directory(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_serve_uses_a_temporary_directory_for_several_workers_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with multiprocess_metrics(1) as none:
        assert none is None
    with multiprocess_metrics(2) as made:
        assert made is not None and made.is_dir()
        assert Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) == made
    assert not made.exists() and "PROMETHEUS_MULTIPROC_DIR" not in os.environ

    given = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    with multiprocess_metrics(1) as kept:
        assert kept == given
    assert given.is_dir()  # the operator's: kept

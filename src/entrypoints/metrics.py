"""Prometheus metrics at ``GET /metrics``: counted from the events, read from the database.

Two sources, one exposition:

- **counters and histograms** of what happened. HTTP requests are observed by the
  access-log middleware; everything the core and the adapters do is counted from their
  events (:mod:`mjcore.events`): a logging handler on the ``mjcore`` loggers turns each
  ``task.created``, ``provider.call``… record into its metric, so the log and the metrics
  cannot disagree and the core needs no metrics library.
- **gauges of the state** (queue, accounts, credits, codes) read from the database when
  Prometheus scrapes, so every process and every host report the same truth.

Under ``mjcore serve --workers N`` prometheus-client's multiprocess mode is on
(``PROMETHEUS_MULTIPROC_DIR``): each worker writes its samples to files there and a
scrape, whichever worker answers it, sums them all.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attrs import define
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mjcore import events
from mjcore.discord_accounts import DiscordAccount
from mjcore.ledger import EntryKind
from mjcore.services import reports
from mjcore.tasks import Provider, TaskStatus

from .http import Doc, Operation, app_services
from .image_schema import Error
from .ratelimit import client_address

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus reads
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
PROVIDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed")
log = logging.getLogger("mjcore.metrics")


def multiprocess() -> bool:
    """Is prometheus-client's multiprocess mode on in this process?"""
    return bool(os.environ.get(MULTIPROCESS_DIR))


@define
class Metrics:
    """One process's metrics, in a registry of their own (an app's, not the module's)."""

    registry: CollectorRegistry
    http_requests: Counter
    http_duration: Histogram
    http_in_progress: Gauge
    tasks: Counter
    refunds: Counter
    refunded_credits: Counter
    ledger_entries: Counter
    ledger_credits: Counter
    redemptions: Counter
    provider_duration: Histogram
    provider_errors: Counter
    auth_failures: Counter
    rate_limited: Counter
    swept: Counter
    listener_connects: Counter
    listener_lease: Counter
    webhook_deliveries: Counter

    @classmethod
    def create(cls) -> Metrics:
        # no *_created series beside every counter
        disable_created_metrics()  # type: ignore[no-untyped-call]
        r = CollectorRegistry(auto_describe=True)
        if not multiprocess():  # these read this process only: meaningless summed
            for collector in (ProcessCollector, PlatformCollector, GCCollector):
                collector(registry=r)
        return cls(
            registry=r,
            http_requests=Counter(
                "mjcore_http_requests",
                "HTTP requests answered, by route template and status class",
                ["method", "route", "status"],
                registry=r,
            ),
            http_duration=Histogram(
                "mjcore_http_request_duration_seconds",
                "Time to answer an HTTP request, by route template",
                ["method", "route"],
                buckets=HTTP_BUCKETS,
                registry=r,
            ),
            http_in_progress=Gauge(
                "mjcore_http_requests_in_progress",
                "HTTP requests being answered now",
                registry=r,
                multiprocess_mode="livesum",
            ),
            tasks=Counter(
                "mjcore_tasks",
                "Tasks created, succeeded and failed (fail_kind: why), by provider and action",
                ["provider", "action", "outcome", "fail_kind"],
                registry=r,
            ),
            refunds=Counter(
                "mjcore_refunds", "Tasks refunded (exactly once each)", ["provider"], registry=r
            ),
            refunded_credits=Counter(
                "mjcore_refunded_credits", "Credits given back by refunds", ["provider"], registry=r
            ),
            ledger_entries=Counter(
                "mjcore_ledger_entries", "Ledger entries written, by kind", ["kind"], registry=r
            ),
            ledger_credits=Counter(
                "mjcore_ledger_credits",
                "Credits moved by ledger entries (absolute), by kind",
                ["kind"],
                registry=r,
            ),
            redemptions=Counter("mjcore_redemptions", "Redemption codes spent", registry=r),
            provider_duration=Histogram(
                "mjcore_provider_request_duration_seconds",
                "Time of one HTTP exchange with Discord or Fireworks, by operation",
                ["provider", "operation"],
                buckets=PROVIDER_BUCKETS,
                registry=r,
            ),
            provider_errors=Counter(
                "mjcore_provider_errors",
                "Provider exchanges that failed: kind is the HTTP status, timeout, network"
                " or cancelled",
                ["provider", "operation", "kind"],
                registry=r,
            ),
            auth_failures=Counter(
                "mjcore_auth_failures",
                "Requests refused for their credentials",
                ["reason"],
                registry=r,
            ),
            rate_limited=Counter(
                "mjcore_rate_limited", "Requests refused by a rate limit", ["rule"], registry=r
            ),
            swept=Counter(
                "mjcore_swept_tasks",
                "Tasks the sweep failed (timed out, or left by a crash)",
                ["provider"],
                registry=r,
            ),
            listener_connects=Counter(
                "mjcore_listener_connects",
                "Gateway connections of our Discord listener",
                registry=r,
            ),
            listener_lease=Counter(
                "mjcore_listener_lease_changes",
                "The listener's lease taken or lost by this process",
                ["change"],
                registry=r,
            ),
            webhook_deliveries=Counter(
                "mjcore_webhook_deliveries",
                "Webhook delivery attempts, by outcome (delivered, retry, failed)",
                ["outcome"],
                registry=r,
            ),
        )

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.http_requests.labels(method, route, f"{status // 100}xx").inc()
        self.http_duration.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        """What this process (or, in multiprocess mode, every worker) has counted."""
        if not multiprocess():
            return generate_latest(self.registry)
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone)  # type: ignore[no-untyped-call]
        return generate_latest(everyone)

    # -- counted from events ---------------------------------------------------------

    def counters(self) -> dict[str, Callable[[Mapping[str, Any]], None]]:
        """What each event adds to the metrics, by event name."""
        on: dict[str, Callable[[Mapping[str, Any]], None]] = {
            "task.created": self._created,
            "task.moved": self._moved,
            "task.refunded": self._refunded,
            "code.redeemed": lambda e: self.redemptions.inc(),
            "provider.call": self._provider_call,
            "auth.failed": lambda e: self.auth_failures.labels(e["reason"]).inc(),
            "ratelimit.refused": lambda e: self.rate_limited.labels(e["rule"]).inc(),
            "sweep.done": self._swept,
            "listener.connected": lambda e: self.listener_connects.inc(),
            "listener.lease": lambda e: self.listener_lease.labels(e["change"]).inc(),
            "webhook.delivery": lambda e: self.webhook_deliveries.labels(e["outcome"]).inc(),
        }
        for kind in EntryKind:
            on[f"ledger.{kind.value}"] = self._ledger
        return on

    def _created(self, e: Mapping[str, Any]) -> None:
        self.tasks.labels(e["provider"], e["action"], "created", "").inc()

    def _moved(self, e: Mapping[str, Any]) -> None:
        if e["to"] == TaskStatus.SUCCESS:
            self.tasks.labels(e["provider"], e["action"], "succeeded", "").inc()
        elif e["to"] == TaskStatus.FAILURE:
            self.tasks.labels(e["provider"], e["action"], "failed", e["fail_kind"]).inc()

    def _refunded(self, e: Mapping[str, Any]) -> None:
        self.refunds.labels(e["provider"]).inc()
        self.refunded_credits.labels(e["provider"]).inc(e["amount"])

    def _ledger(self, e: Mapping[str, Any]) -> None:
        kind = e["msg"].removeprefix("ledger.")
        self.ledger_entries.labels(kind).inc()
        self.ledger_credits.labels(kind).inc(abs(e["delta"]))

    def _provider_call(self, e: Mapping[str, Any]) -> None:
        self.provider_duration.labels(e["provider"], e["operation"]).observe(
            e["duration_ms"] / 1000
        )
        if e["outcome"] != "ok":
            kind = str(e["status"]) if e["outcome"] == "http_error" else e["outcome"]
            self.provider_errors.labels(e["provider"], e["operation"], kind).inc()

    def _swept(self, e: Mapping[str, Any]) -> None:
        for provider in Provider:
            if e.get(provider.value):
                self.swept.labels(provider.value).inc(e[provider.value])


class EventCounter(logging.Handler):
    """Counts the events of the ``mjcore`` loggers as metrics; renders nothing."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.DEBUG)
        self.on = metrics.counters()

    def emit(self, record: logging.LogRecord) -> None:
        count = self.on.get(record.msg) if isinstance(record.msg, str) else None
        if count is None:
            return
        try:
            count(record.__dict__)
        except Exception:  # noqa: BLE001 (a metric must never break what it counts)
            self.handleError(record)


@contextmanager
def counting(metrics: Metrics) -> Iterator[None]:
    """Count the events logged while this is open (an app's lifespan)."""
    logger = logging.getLogger("mjcore")
    handler, level = EventCounter(metrics), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)  # every event, whatever LOG_LEVEL prints
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# -- read from the database at scrape time ---------------------------------------------


class _Fixed:
    """A collector of families computed beforehand (the scrape's database reads)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def _gauge(name: str, text: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


async def state_families(request: Request) -> list[Metric]:
    """The database's state now: queue, accounts, credits outstanding, codes."""
    services = app_services(request)
    settings = services.core.settings
    limits = [
        _gauge(
            "mjcore_queue_concurrency_limit",
            "Jobs allowed at the provider at once",
            settings.mj_concurrency,
            provider="midjourney",
        ),
        _gauge(
            "mjcore_queue_size_limit",
            "Jobs allowed to wait",
            settings.mj_queue_size,
            provider="midjourney",
        ),
    ]
    try:
        state = await reports.observed(services.core.store)
    except Exception:  # the scrape still reports what the process counted
        log.warning("metrics.database_unavailable", exc_info=True)
        return [*limits, _gauge("mjcore_database_up", "The database answered the scrape", 0)]
    queue = state.queues[Provider.MIDJOURNEY]
    counts = state.counts
    codes = GaugeMetricFamily(
        "mjcore_redemption_codes", "Redemption codes issued, by state", labels=["state"]
    )
    codes.add_metric(["used"], counts.used_codes)
    codes.add_metric(["unused"], counts.codes - counts.used_codes)
    return [
        *_pool_families(state.pool),
        *limits,
        _gauge("mjcore_database_up", "The database answered the scrape", 1),
        _gauge(
            "mjcore_queue_running",
            "Jobs holding a slot at the provider",
            queue.running,
            provider="midjourney",
        ),
        _gauge(
            "mjcore_queue_waiting",
            "Jobs accepted and waiting for a slot",
            queue.waiting,
            provider="midjourney",
        ),
        _gauge("mjcore_accounts", "Live accounts", counts.accounts),
        _gauge("mjcore_credits_outstanding", "Credits held by live accounts", counts.credits),
        codes,
    ]


def _pool_families(pool: Sequence[DiscordAccount]) -> list[Metric]:
    """Each Discord account of the pool, by name (never more than the name)."""
    up = GaugeMetricFamily(
        "mjcore_discord_account_up",
        "1 if the account takes jobs (enabled and healthy), else 0",
        labels=["account", "state"],
    )
    running = GaugeMetricFamily(
        "mjcore_discord_account_running", "Jobs at Discord through the account", labels=["account"]
    )
    limit = GaugeMetricFamily(
        "mjcore_discord_account_concurrency",
        "Jobs the account may run at once",
        labels=["account"],
    )
    jobs = CounterMetricFamily(
        "mjcore_discord_account_jobs", "Jobs sent through the account", labels=["account"]
    )
    for account in pool:
        up.add_metric([account.name, account.state], 1 if account.available else 0)
        running.add_metric([account.name], account.running)
        limit.add_metric([account.name], account.concurrency)
        jobs.add_metric([account.name], account.jobs)
    return [up, running, limit, jobs]


# -- the endpoint -----------------------------------------------------------------------


def _authorised(request: Request, token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


async def metrics_endpoint(request: Request) -> Response:
    """The text exposition: what was counted, then the database's state now."""
    services = app_services(request)
    if not _authorised(request, services.core.settings.metrics_token):
        events.emit(
            logging.getLogger("mjcore.auth"),
            logging.WARNING,
            "auth.failed",
            reason="metrics_token",
            client=client_address(request),
            path="/metrics",
        )
        return JSONResponse(
            {"error": "未授权 (unauthorized)"}, 401, headers={"WWW-Authenticate": "Bearer"}
        )
    metrics: Metrics = request.app.state.metrics
    state = CollectorRegistry(auto_describe=False)
    state.register(_Fixed(await state_families(request)))
    counted = await asyncio.to_thread(metrics.exposition)  # multiprocess: reads files
    return Response(counted + generate_latest(state), media_type=CONTENT_TYPE)


def metrics_route() -> Operation:
    text: dict[str, Any] = {"text/plain": {"schema": {"type": "string"}}}
    return Operation(
        "/metrics",
        metrics_endpoint,
        "GET",
        Doc(
            "Prometheus metrics, text exposition (a bearer token when MJCORE_METRICS_TOKEN is set)",
            {200: None, 401: Error},
            produces=text,
            security="metricsToken",
        ),
    )


# -- multiprocess mode (mjcore serve --workers N) ------------------------------------------


def prepare_directory(path: Path) -> None:
    """Empty ``path`` of an earlier run's metric files: their samples would be summed in."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def bury_dead_workers(path: Path, alive: Callable[[int], bool]) -> list[int]:
    """Let the live gauges forget workers that died (a restarted worker has a new pid);
    counters and histograms of the dead stay, or totals would go backwards."""
    buried = []
    for file in path.glob("gauge_live*_*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            mark_process_dead(int(pid), str(path))  # type: ignore[no-untyped-call]
            buried.append(int(pid))
    return buried


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process has the pid now: not our worker
        return False
    return True

"""Logs and metrics of the app in process: request ids, the events of a scripted workload,
the exact counts ``GET /metrics`` shows after it, and no secret in any line."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from entrypoints import logs

from ..e2e import CALLBACK_SECRET, User, new_user, wait_for
from ..fakes import discord as fake_discord
from ..fakes import fireworks as fake_fireworks
from ..fakes.discord import FakeDiscord
from ..fakes.fireworks import FakeFireworks
from ..inprocess import BASE_URL, InProcess, in_process, listening, until

API = "/v1/api/trigger"
JWT_SECRET = "observability-jwt-secret-" + "0123456789abcdef" * 3
ADMIN = ("ops-admin", "ops-admin-password-42")
METRICS_TOKEN = "metrics-scrape-token-0123456789"
WRONG_KEY = "wrong-app-key-0123456789012345678901234"
WRONG_PASSWORD = "not-the-password-9876"


@pytest.fixture(scope="module")
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord(midjourney=True, heartbeat_interval_ms=500) as fake:
        yield fake


@pytest.fixture(scope="module")
def fireworks() -> Iterator[FakeFireworks]:
    with FakeFireworks() as fake:
        yield fake


class Lines(logging.Handler):
    """Every record at DEBUG, rendered as the server renders it, at the moment it is
    logged (so the request's context is in it): JSON and key=value text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.json, self.text = logs.formatter("json"), logs.formatter("console")
        self.lines: list[str] = []
        self.parsed: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "httpx" and f" {BASE_URL}/" in record.getMessage():
            return  # the test's own client, calling the app with the secrets it was given
        line = self.json.format(record)
        self.lines += [line, self.text.format(record)]
        self.parsed.append(json.loads(line))


@pytest.fixture
def captured() -> Iterator[Lines]:
    handler, root = Lines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def app(
    discord: FakeDiscord, fireworks: FakeFireworks, tmp_path: Path, captured: Lines
) -> AsyncIterator[InProcess]:
    """Every secret configured, our listener on the fake gateway, the log captured."""
    settings = {
        "jwt_secret": JWT_SECRET,
        "admin_username": ADMIN[0],
        "admin_password": ADMIN[1],
        "callback_secret": CALLBACK_SECRET,
        "metrics_token": METRICS_TOKEN,
        "login_rate_per_name": "3/minute",
        "listener_deleted_grace_s": "0.3",
    }
    configured = {k.removeprefix("MJCORE_").lower(): v for k, v in fireworks.env().items()}
    async with listening(discord, tmp_path, **settings, **configured) as running:
        yield running


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The exposition's samples by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def workload(app: InProcess, discord: FakeDiscord) -> dict[str, Any]:
    """Both surfaces, one of everything: what a secret could leak through and what the
    metrics count. Returns the secrets it handled."""
    client = app.client
    used: dict[str, Any] = {}
    codes = await client.post(
        "/api/admin/codes", json={"credits": 3, "count": 2}, headers=basic(*ADMIN)
    )
    used["codes"] = codes.json()["codes"]
    password = "alice-password-1234"
    await client.post("/api/register", json={"username": "alice", "password": password})
    login = await client.post("/api/login", json={"username": "alice", "password": password})
    jwt = login.json()["token"]
    used |= {"password": password, "jwt": jwt}
    alice = {"Authorization": f"Bearer {jwt}"}
    redeemed = await client.post("/api/redeem", json={"code": used["codes"][0]}, headers=alice)
    assert redeemed.status_code == 200
    made = await client.post("/api/generate", json={"prompt": "a lighthouse"}, headers=alice)
    broken = await client.post("/api/generate", json={"prompt": "a kettle [500]"}, headers=alice)
    assert (made.status_code, broken.status_code) == (200, 502)

    bob = await new_user(app.database_url, 3)
    used["key"] = bob.key
    grids = [
        (await client.post(f"{API}/imagine", json={"prompt": p}, headers=bob.headers)).json()
        for p in ("a red fox", "a blue whale")
    ]
    for grid in grids:
        done = await wait_for(client, bob, grid["task_id"], lambda t: t["status"] == "SUCCESS")
        assert done["image_url"]
    discord.interaction_status = 400
    try:
        refused = await client.post(f"{API}/imagine", json={"prompt": "a cat"}, headers=bob.headers)
    finally:
        discord.interaction_status = 204
    assert refused.status_code == 502

    await refusals(client, bob)
    return used


async def refusals(client: httpx.AsyncClient, bob: User) -> None:
    """One of each refusal the log and the metrics must tell about."""
    wrong_key = {"Authorization": f"Bearer {WRONG_KEY}"}
    assert (await client.get(f"{API}/tasks", headers=wrong_key)).status_code == 403
    assert (await client.get(f"{API}/tasks")).status_code == 401
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"}
    assert (await client.get("/api/user", headers=forged)).status_code == 401
    assert (
        await client.get("/api/admin/users", headers=basic(ADMIN[0], WRONG_PASSWORD))
    ).status_code == 401
    tries = [
        await client.post("/api/login", json={"username": "mallory", "password": WRONG_PASSWORD})
        for _ in range(4)
    ]
    assert [t.status_code for t in tries] == [401, 401, 401, 429]
    event = {"type": "end", "id": 1, "content": "<#1#>", "trigger_id": "1"}
    by_query = await client.post(f"{API}/midjourney/result?secret={CALLBACK_SECRET}", json=event)
    by_header = await client.post(
        f"{API}/midjourney/result", json=event, headers={"X-Callback-Secret": CALLBACK_SECRET}
    )
    assert by_query.json() == by_header.json() == {"message": "ignored"}
    assert (await client.get(f"{API}/tasks", headers=bob.headers)).status_code == 200


# -- request ids ----------------------------------------------------------------------------


async def test_a_request_id_is_taken_from_the_client_or_made_and_sent_back(app: InProcess) -> None:
    given = await app.client.get("/healthz", headers={"X-Request-ID": "abc-123 from the LB"})
    made = await app.client.get("/healthz")
    too_long = await app.client.get("/healthz", headers={"X-Request-ID": "x" * 129})
    blank = await app.client.get("/healthz", headers={"X-Request-ID": "   "})

    assert given.headers["x-request-id"] == "abc-123 from the LB"
    for fresh in (made, too_long, blank):
        rid = fresh.headers["x-request-id"]
        assert len(rid) == 32 and int(rid, 16) >= 0
    assert len({made.headers["x-request-id"], too_long.headers["x-request-id"]}) == 2


async def test_every_line_of_a_request_carries_its_id(app: InProcess, captured: Lines) -> None:
    user = await new_user(app.database_url, 5)
    answer = await app.client.post(
        f"{API}/imagine",
        json={"prompt": "a quiet harbour"},
        headers=user.headers | {"X-Request-ID": "req-imagine-1"},
    )
    task_id = answer.json()["task_id"]

    mine = [line for line in captured.parsed if line.get("request_id") == "req-imagine-1"]
    about_task = [
        line
        for line in captured.parsed
        if line.get("task_id") == task_id and line["event"] == "task.created"
    ]
    assert {"ledger.debit", "task.created", "provider.call", "http.request"} <= {
        line["event"] for line in mine
    }
    assert about_task and all(line.get("request_id") == "req-imagine-1" for line in about_task)
    [access] = [line for line in mine if line["event"] == "http.request"]
    assert access["route"] == f"{API}/imagine" and access["status"] == 200


# -- the events and the metrics of one workload -----------------------------------------------


async def test_the_workloads_events_are_logged_with_their_fields(
    app: InProcess, discord: FakeDiscord, captured: Lines
) -> None:
    await workload(app, discord)
    events = captured.parsed

    def named(name: str) -> list[dict[str, Any]]:
        return [e for e in events if e["event"] == name]

    refused = [e for e in named("task.moved") if e.get("fail_kind") == "refused"]
    assert [(e["provider"], e["action"], e["from"], e["to"]) for e in refused] == [
        ("midjourney", "imagine", "SUBMITTED", "FAILURE")
    ]
    assert {(e["provider"], e["amount"]) for e in named("task.refunded")} == {
        ("midjourney", 1),
        ("fireworks", 1),
    }
    assert len(named("ledger.debit")) == 5 and len(named("ledger.refund")) == 2
    assert [e["credits"] for e in named("code.redeemed")] == [3]
    errors = [
        (e["provider"], e["operation"], e["status"])
        for e in named("provider.call")
        if e["outcome"] == "http_error"
    ]
    assert errors == [("fireworks", "text_to_image", 500), ("discord", "interaction", 400)]
    assert all(e["duration_ms"] >= 0 for e in named("provider.call"))
    reasons = {(e["reason"], e["client"]) for e in named("auth.failed")}
    assert {r for r, _ in reasons} == {
        "invalid_app_key",
        "not_authenticated",
        "unauthorized",
        "admin_unauthorized",
        "bad_credentials",
    }
    assert {client for _, client in reasons} == {"127.0.0.1"}
    assert [e["rule"] for e in named("ratelimit.refused")] == ["login-name"]
    assert {e["change"] for e in named("listener.lease")} == {"acquired"}
    await until(lambda: bool(named("listener.connected")))  # discord.py's READY, in time


async def test_metrics_after_the_workload_count_exactly_what_happened(
    app: InProcess, discord: FakeDiscord
) -> None:
    await workload(app, discord)
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    refused = await app.client.get("/metrics")
    answer = await app.client.get("/metrics", headers=bearer)
    m = scraped(answer.text)

    assert refused.status_code == 401 and answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")

    def tasks(provider: str, action: str, outcome: str, fail_kind: str = "") -> float:
        labels = {"provider": provider, "action": action, "outcome": outcome}
        return sample(m, "mjcore_tasks_total", **labels, fail_kind=fail_kind)

    assert tasks("midjourney", "imagine", "created") == 3
    assert tasks("midjourney", "imagine", "succeeded") == 2
    assert tasks("midjourney", "imagine", "failed", "refused") == 1
    assert tasks("fireworks", "generate", "created") == 2
    assert tasks("fireworks", "generate", "succeeded") == 1
    assert tasks("fireworks", "generate", "failed", "error") == 1
    assert sample(m, "mjcore_refunds_total", provider="midjourney") == 1
    assert sample(m, "mjcore_refunds_total", provider="fireworks") == 1
    assert sample(m, "mjcore_refunded_credits_total", provider="fireworks") == 1
    assert sample(m, "mjcore_ledger_entries_total", kind="debit") == 5
    assert sample(m, "mjcore_ledger_entries_total", kind="refund") == 2
    assert sample(m, "mjcore_redemptions_total") == 1

    imagine = {"method": "POST", "route": f"{API}/imagine"}
    assert sample(m, "mjcore_http_requests_total", **imagine, status="2xx") == 2
    assert sample(m, "mjcore_http_requests_total", **imagine, status="5xx") == 1
    assert sample(m, "mjcore_http_request_duration_seconds_count", **imagine) == 3
    task_route = {"method": "GET", "route": f"{API}/task/{{task_id}}", "status": "2xx"}
    assert sample(m, "mjcore_http_requests_total", **task_route) >= 2  # polled until done
    assert not [
        k
        for k in m
        if dict(k[1]).get("route", "").startswith(f"{API}/task/") and "{" not in dict(k[1])["route"]
    ]  # never a raw path

    interaction = {"provider": "discord", "operation": "interaction"}
    assert sample(m, "mjcore_provider_errors_total", **interaction, kind="400") == 1
    assert sample(m, "mjcore_provider_request_duration_seconds_count", **interaction) == 3
    generate = {"provider": "fireworks", "operation": "text_to_image"}
    assert sample(m, "mjcore_provider_errors_total", **generate, kind="500") == 1
    assert sample(m, "mjcore_auth_failures_total", reason="bad_credentials") == 3
    assert sample(m, "mjcore_auth_failures_total", reason="metrics_token") == 1
    assert sample(m, "mjcore_rate_limited_total", rule="login-name") == 1
    assert sample(m, "mjcore_listener_lease_changes_total", change="acquired") == 1

    # read from the database at scrape time
    assert sample(m, "mjcore_database_up") == 1
    assert sample(m, "mjcore_queue_running", provider="midjourney") == 0
    assert sample(m, "mjcore_queue_waiting", provider="midjourney") == 0
    assert sample(m, "mjcore_queue_concurrency_limit", provider="midjourney") == 20
    assert sample(m, "mjcore_accounts") == 2
    assert sample(m, "mjcore_credits_outstanding") == 2 + 1  # alice 3-1, bob 3-2
    assert sample(m, "mjcore_redemption_codes", state="used") == 1
    assert sample(m, "mjcore_redemption_codes", state="unused") == 1


async def test_the_queue_gauges_read_the_database_at_scrape_time(tmp_path: Path) -> None:
    with FakeDiscord() as quiet:  # no Midjourney bot: jobs stay at Discord
        env = quiet.env() | {"MJCORE_MJ_CONCURRENCY": "1", "MJCORE_MJ_QUEUE_SIZE": "5"}
        async with in_process(env, tmp_path) as app:
            user = await new_user(app.database_url, 5)
            for prompt in ("a slow snail", "a slower snail"):
                answer = await app.client.post(
                    f"{API}/imagine", json={"prompt": prompt}, headers=user.headers
                )
                assert answer.status_code == 200
            m = scraped((await app.client.get("/metrics")).text)  # no token set: open

    assert sample(m, "mjcore_queue_running", provider="midjourney") == 1
    assert sample(m, "mjcore_queue_waiting", provider="midjourney") == 1
    assert sample(m, "mjcore_queue_size_limit", provider="midjourney") == 5
    assert sample(m, "mjcore_credits_outstanding") == 3


# -- secrets ------------------------------------------------------------------------------


async def test_no_secret_reaches_any_log_line(
    app: InProcess, discord: FakeDiscord, captured: Lines
) -> None:
    used = await workload(app, discord)
    await app.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    secrets = {
        JWT_SECRET,
        ADMIN[1],
        CALLBACK_SECRET,
        METRICS_TOKEN,
        fake_discord.TOKEN,
        fake_discord.BOT_TOKEN,
        fake_fireworks.API_KEY,
        WRONG_KEY,
        WRONG_PASSWORD,
        used["key"],
        used["jwt"],
        used["password"],
        *used["codes"],
    }
    everything = "\n".join(captured.lines)

    assert len(captured.lines) > 200 and '"event": "task.moved"' in everything
    assert sorted(s for s in secrets if s in everything) == []

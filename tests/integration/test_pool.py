"""A pool of Discord accounts end to end: the app in this process, a fake Discord whose
users each have their own channel, jobs ended the way the listener reports them.

The fake counts the jobs in flight on each channel (an interaction starts one; the test
says :meth:`FakeDiscord.finished` before it tells mjcore that one ended), so "never more
than an account's concurrency at Discord" is what Discord saw, not what we recorded.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from attrs import frozen
from prometheus_client.parser import text_string_to_metric_families

from entrypoints import logs
from entrypoints.bootstrap import open_store
from mjcore.clock import system_clock
from mjcore.ledger import EntryKind
from mjcore.services.leases import Lease

from ..e2e import CALLBACK_SECRET, User, credits, ledger_kinds, ledger_ok, new_user, wait_for
from ..fakes.discord import CHANNEL, TOKEN, FakeAccount, FakeDiscord, listener_event
from ..inprocess import InProcess, in_process, listening, polled, until

API = "/v1/api/trigger"
ADMIN = ("pool-admin", "pool-admin-password")
ADMIN_HEADERS = {"Authorization": "Basic " + base64.b64encode(":".join(ADMIN).encode()).decode()}
CAPACITY = {"default": 2, "b": 3, "c": 5}
_message_ids = itertools.count(1112838593312997377)


@frozen
class Pool:
    app: InProcess
    fake: FakeDiscord
    channels: dict[str, str]  # account name -> its channel
    accounts: dict[str, FakeAccount]

    @property
    def client(self) -> httpx.AsyncClient:
        return self.app.client

    def name_of(self, channel: str) -> str:
        return next(name for name, c in self.channels.items() if c == channel)


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as discord:
        yield discord


@asynccontextmanager
async def _pool(
    fake: FakeDiscord, home: Path, capacity: dict[str, int], **settings: str
) -> AsyncIterator[Pool]:
    env = (
        fake.env()
        | {f"MJCORE_{k.upper()}": v for k, v in settings.items()}
        | {
            "MJCORE_MJ_CONCURRENCY": str(capacity["default"]),
            "MJCORE_MJ_QUEUE_SIZE": "100",
            "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
            "MJCORE_ADMIN_USERNAME": ADMIN[0],
            "MJCORE_ADMIN_PASSWORD": ADMIN[1],
        }
    )
    async with in_process(env, home) as app:
        channels = {"default": CHANNEL}
        accounts = {}
        for name, concurrency in capacity.items():
            if name == "default":
                continue
            account = fake.add_account(name)
            added = await app.client.post(
                "/api/admin/discord-accounts",
                json={
                    "name": name,
                    "guild_id": account.guild_id,
                    "channel_id": account.channel_id,
                    "user_token": account.token,
                    "concurrency": concurrency,
                    "queue_size": 100,
                },
                headers=ADMIN_HEADERS,
            )
            assert added.status_code == 200, added.text
            assert account.token not in added.text
            channels[name], accounts[name] = account.channel_id, account
        yield Pool(app, fake, channels, accounts)


@pytest.fixture
async def pool(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[Pool]:
    """default (2 at a time), b (3) and c (5)."""
    async with _pool(fake, tmp_path, CAPACITY) as made:
        yield made


def _trigger(interaction: dict[str, Any]) -> str:
    value: str = interaction["data"]["options"][0]["value"]
    return value[2 : value.index("#>")]


async def _imagine(app: Pool | InProcess, user: User, prompt: str) -> dict[str, Any]:
    answer = await app.client.post(f"{API}/imagine", json={"prompt": prompt}, headers=user.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _end(pool: Pool, interaction: dict[str, Any], kind: str = "end") -> None:
    """Discord finished the job this interaction started: the fake first, then mjcore."""
    pool.fake.finished(interaction["channel_id"])
    trigger = _trigger(interaction)
    content = f"**<#{trigger}#>a red fox** - <@1093106715702083594> (fast)"
    event = listener_event(
        pool.fake, kind, trigger, next(_message_ids), content, msg_hash=str(uuid.uuid4())
    )
    answer = await pool.client.post(
        f"{API}/midjourney/result", json=event, headers={"X-Callback-Secret": CALLBACK_SECRET}
    )
    assert answer.status_code == 200, answer.text


async def _end_everything(pool: Pool, expected: int) -> list[dict[str, Any]]:
    """End every imagine Discord has seen, as it sees them, until ``expected`` have ended
    (each end frees a slot a waiting job takes). The interactions, in order."""
    ended: set[str] = set()
    while len(ended) < expected:
        fresh = [i for i in pool.fake.sent() if i["type"] == 2 and _trigger(i) not in ended]
        assert fresh, f"only {len(ended)} of {expected} jobs reached Discord"
        for interaction in fresh:
            ended.add(_trigger(interaction))
            await _end(pool, interaction)
    return [i for i in pool.fake.sent() if i["type"] == 2]


async def _finished(app: InProcess, user: User, task_id: str) -> dict[str, Any]:
    return await wait_for(
        app.client, user, task_id, lambda t: t["status"] in ("SUCCESS", "FAILURE")
    )


async def _view(pool: Pool, user: User, task_id: str) -> dict[str, Any]:
    answer = await pool.client.get(f"{API}/task/{task_id}", headers=user.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _metrics(pool: Pool) -> dict[str, dict[str, float]]:
    """``GET /metrics``: each per-account sample by metric and account name."""
    answer = await pool.client.get("/metrics")
    assert answer.status_code == 200, answer.text
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if "account" in sample.labels:
                found.setdefault(sample.name, {})[sample.labels["account"]] = sample.value
    return found


async def _admin_accounts(pool: Pool) -> dict[str, dict[str, Any]]:
    answer = await pool.client.get("/api/admin/discord-accounts", headers=ADMIN_HEADERS)
    assert answer.status_code == 200, answer.text
    return {a["name"]: a for a in answer.json()["accounts"]}


async def test_thirty_imagines_spread_by_capacity_and_follow_ups_stay_home(pool: Pool) -> None:
    user = await new_user(pool.app.database_url, 1000)

    accepted = await asyncio.gather(*(_imagine(pool, user, f"fox {i}") for i in range(30)))

    assert Counter(a["status"] for a in accepted) == {"SUBMITTED": 10, "NOT_START": 20}
    assert {pool.name_of(c): n for c, n in pool.fake.in_flight.items()} == CAPACITY
    metrics = await _metrics(pool)
    assert metrics["mjcore_discord_account_running"] == CAPACITY
    assert metrics["mjcore_discord_account_concurrency"] == CAPACITY
    assert metrics["mjcore_discord_account_up"] == dict.fromkeys(CAPACITY, 1)
    seen = await _end_everything(pool, 30)
    assert {pool.name_of(c): n for c, n in pool.fake.peak.items()} == CAPACITY  # never above
    per_channel = Counter(pool.name_of(i["channel_id"]) for i in seen)
    assert sum(per_channel.values()) == 30 and set(per_channel) == set(CAPACITY)
    by_trigger = {_trigger(i): pool.name_of(i["channel_id"]) for i in seen}
    grids: dict[str, dict[str, Any]] = {}
    for answer in accepted:
        task = await wait_for(
            pool.client, user, answer["task_id"], lambda t: t["status"] in ("SUCCESS", "FAILURE")
        )
        assert task["status"] == "SUCCESS"
        assert task["discord_account"] == by_trigger[task["trigger_id"]]  # the view names it
        grids.setdefault(task["discord_account"], task)

    for name, grid in grids.items():  # a follow-up of each account's grid goes home
        pressed = await pool.client.post(
            f"{API}/upscale", json={"task_id": grid["task_id"], "index": 1}, headers=user.headers
        )
        assert pressed.status_code == 200, pressed.text
        sent = pool.fake.sent()[-1]
        assert sent["type"] == 3 and sent["channel_id"] == pool.channels[name]
        assert sent["message_id"] == grid["msg_id"]
        follow_up = await _view(pool, user, pressed.json()["task_id"])
        assert follow_up["discord_account"] == name
    assert await ledger_ok(pool.app.database_url)


async def test_disabling_an_account_mid_run_moves_waiting_jobs_and_refunds_its_running_once(
    pool: Pool,
) -> None:
    user = await new_user(pool.app.database_url, 1000)
    accepted = await asyncio.gather(*(_imagine(pool, user, f"owl {i}") for i in range(30)))
    first_on_c = next(i for i in pool.fake.sent() if i["channel_id"] == pool.channels["c"])
    await _end(pool, first_on_c)  # a grid made on c; a waiting job takes its slot
    c_grid = next(a for a in accepted if a["trigger_id"] == _trigger(first_on_c))
    running_on_c = [
        _trigger(i) for i in pool.fake.sent_on(pool.channels["c"]) if i is not first_on_c
    ]
    assert len(running_on_c) == 5
    before = await credits(pool.app.database_url, user)

    disabled = await pool.client.post(
        "/api/admin/discord-accounts/c/disable", headers=ADMIN_HEADERS
    )

    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["failed_jobs"] == 5
    assert disabled.json()["account"]["state"] == "disabled"
    metrics = await _metrics(pool)
    assert metrics["mjcore_discord_account_up"] == {"default": 1, "b": 1, "c": 0}
    assert metrics["mjcore_discord_account_running"]["c"] == 0
    refunded = await credits(pool.app.database_url, user)
    assert refunded == before + 5  # each of its running jobs refunded
    for answer in accepted:
        if answer["trigger_id"] in running_on_c:
            task = await _view(pool, user, answer["task_id"])
            assert task["status"] == "FAILURE" and "went out of service" in task["fail_reason"]
    pool.fake.finished(pool.channels["c"], 5)
    late = next(i for i in pool.fake.sent_on(pool.channels["c"]) if _trigger(i) in running_on_c)
    await _end(pool, late)  # Discord drew it anyway: no second refund, no success
    pool.fake.finished(pool.channels["c"], -1)  # (that job was counted ended already)
    assert await credits(pool.app.database_url, user) == refunded

    pressed = await pool.client.post(
        f"{API}/upscale", json={"task_id": c_grid["task_id"], "index": 1}, headers=user.headers
    )
    assert pressed.status_code == 409, pressed.text
    assert pressed.json()["code"] != 0 and "(c)" in pressed.json()["detail"]
    assert await credits(pool.app.database_url, user) == refunded  # the follow-up charged nothing

    seen = await _end_everything(pool, 30)  # c's jobs were all ended above
    assert len(pool.fake.sent_on(pool.channels["c"])) == 6  # nothing more went to c
    assert len(seen) == 30
    assert pool.fake.peak[pool.channels["default"]] == 2 and pool.fake.peak[pool.channels["b"]] == 3
    kinds = Counter(await ledger_kinds(pool.app.database_url, user))
    assert kinds[EntryKind.REFUND] == 5
    assert await ledger_ok(pool.app.database_url)


async def test_a_401_takes_the_account_out_and_the_next_job_goes_elsewhere(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with _pool(fake, tmp_path, {"default": 1, "b": 1}, mj_health_check_s="1") as pool:
        user = await new_user(pool.app.database_url, 10)
        fake.reject(pool.accounts["b"].token)

        refused = await pool.client.post(  # to "b": both are free and b sorts first
            f"{API}/imagine", json={"prompt": "a heron"}, headers=user.headers
        )

        assert refused.status_code == 502, refused.text  # as any refused submission
        assert "account b went out of service" in refused.json()["detail"]
        task = await _view(pool, user, refused.json()["task_id"])
        assert task["status"] == "FAILURE" and task["discord_account"] == "b"
        assert "401" in task["fail_reason"]
        accounts = await _admin_accounts(pool)
        assert accounts["b"]["state"] == "rejected" and "401" in accounts["b"]["health_reason"]
        assert await credits(pool.app.database_url, user) == 10  # refunded

        second = await _imagine(pool, user, "a crane")

        assert second["status"] == "SUBMITTED"
        assert fake.sent()[-1]["channel_id"] == CHANNEL
        assert (await _view(pool, user, second["task_id"]))["discord_account"] == "default"
        assert pool.accounts["b"].token not in str(accounts)
        assert await ledger_ok(pool.app.database_url)

        fake.rejected.clear()  # the operator fixed the token at Discord: the health check sees it
        await polled(lambda: _admin_accounts(pool), lambda found: found["b"]["state"] == "healthy")
        assert "GET /api/v9/users/@me" in fake.api_calls


async def test_a_429_on_one_account_delays_only_that_account(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with _pool(fake, tmp_path, {"default": 1, "b": 1}) as pool:
        user = await new_user(pool.app.database_url, 10)
        fake.rate_limit_next(1, retry_after=1.5, token=pool.accounts["b"].token)

        slow = asyncio.ensure_future(_imagine(pool, user, "a heron"))  # to b, which waits
        await until(lambda: fake.rate_limited > 0)
        quick = await _imagine(pool, user, "a crane")  # to default, meanwhile
        assert not slow.done()
        first = await slow

        assert first["status"] == quick["status"] == "SUBMITTED"
        order = [_trigger(i) for i in fake.sent()]
        assert order == [quick["trigger_id"], first["trigger_id"]]  # b's waited, default's not
        assert fake.sent()[0]["channel_id"] == CHANNEL
        assert fake.sent()[1]["channel_id"] == pool.channels["b"]
        accounts = await _admin_accounts(pool)
        assert {a["state"] for a in accounts.values()} == {"healthy"}


class Lines(logging.Handler):
    """Every record at DEBUG, rendered as the server renders it: JSON and key=value."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.json, self.text = logs.formatter("json"), logs.formatter("console")
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += [self.json.format(record), self.text.format(record)]


async def test_no_token_reaches_a_log_line_the_admin_api_or_the_openapi_document(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    captured, root = Lines(), logging.getLogger()
    level = root.level
    root.addHandler(captured)
    root.setLevel(logging.DEBUG)
    try:
        async with _pool(fake, tmp_path, {"default": 1, "b": 1}) as pool:
            user = await new_user(pool.app.database_url, 10)
            bot_token = "MTIwMDAwMDAwMDAwMDAwMDAyMQ.GfAkEd.pool-bot-token-of-account-c"
            with_bot = await pool.client.post(
                "/api/admin/discord-accounts",
                json={
                    "name": "c",
                    "guild_id": "1100000000000000001",
                    "channel_id": "1300000000000000001",
                    "user_token": "user-token-of-account-c-0123456789",
                    "bot_token": bot_token,
                },
                headers=ADMIN_HEADERS,
            )
            assert with_bot.status_code == 200 and with_bot.json()["account"]["own_bot"]
            fake.reject(pool.accounts["b"].token)
            answers = [
                await pool.client.post(
                    f"{API}/imagine", json={"prompt": f"a wren {i}"}, headers=user.headers
                )
                for i in range(3)
            ]
            assert 502 in [a.status_code for a in answers]  # one hit b's revoked token
            shown = [
                with_bot.text,
                *(a.text for a in answers),
                (await pool.client.get("/api/admin/discord-accounts", headers=ADMIN_HEADERS)).text,
                (await pool.client.get("/openapi.json")).text,
                (await pool.client.post(f"{API}/imagine", json={}, headers=user.headers)).text,
            ]
            for name in ("b", "c"):
                changed = await pool.client.post(
                    f"/api/admin/discord-accounts/{name}/disable", headers=ADMIN_HEADERS
                )
                shown.append(changed.text)
    finally:
        root.removeHandler(captured)
        root.setLevel(level)

    tokens = {TOKEN, pool.accounts["b"].token, "user-token-of-account-c-0123456789", bot_token}
    everything = "\n".join(captured.lines + shown)
    assert len(captured.lines) > 50 and "pool.account_down" in everything
    assert sorted(t for t in tokens if t in everything) == []


async def test_each_accounts_channel_has_its_own_listener_and_lease(tmp_path: Path) -> None:
    """Two accounts, the settings' bot in both channels: jobs and their follow-ups end
    through our listener on each channel (no HTTP callback), each channel's lease held."""
    with FakeDiscord(midjourney=True, heartbeat_interval_ms=500) as fake:
        second = fake.add_account("b")
        admin = {"admin_username": ADMIN[0], "admin_password": ADMIN[1]}
        async with listening(fake, tmp_path, mj_concurrency="1", **admin) as app:
            connected = fake.gateway.connections
            added = await app.client.post(
                "/api/admin/discord-accounts",
                json={
                    "name": "b",
                    "guild_id": second.guild_id,
                    "channel_id": second.channel_id,
                    "user_token": second.token,
                    "concurrency": 1,
                },
                headers=ADMIN_HEADERS,
            )
            assert added.status_code == 200, added.text
            await until(lambda: fake.gateway.connections > connected)  # the next rescan
            user = await new_user(app.database_url, 10)

            grids = await asyncio.gather(*(_imagine(app, user, f"a lantern {i}") for i in range(2)))
            done = [await _finished(app, user, g["task_id"]) for g in grids]

            assert {t["discord_account"] for t in done} == {"default", "b"}
            assert {t["status"] for t in done} == {"SUCCESS"}
            on_b = next(t for t in done if t["discord_account"] == "b")
            pressed = await app.client.post(
                f"{API}/upscale",
                json={"task_id": on_b["task_id"], "index": 1},
                headers=user.headers,
            )
            assert pressed.status_code == 200, pressed.text
            upscale = await _finished(app, user, pressed.json()["task_id"])
            assert upscale["status"] == "SUCCESS" and upscale["discord_account"] == "b"
            assert fake.sent()[-1]["channel_id"] == second.channel_id
            assert {m["channel_id"] for m in fake.bot.posted} == {CHANNEL, second.channel_id}
            store = await open_store(app.database_url, 2)
            try:
                for channel in (CHANNEL, second.channel_id):
                    rival = Lease(store, system_clock, f"discord-listener:{channel}", "rival", 2)
                    assert not await rival.hold()  # ours holds it
            finally:
                await store.close()
            assert await ledger_ok(app.database_url)
        assert fake.bot.errors == []

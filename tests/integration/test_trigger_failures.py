"""Every way a Midjourney job can fail refunds it exactly once; the queue holds its limits."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx
import pytest

from mjcore.ledger import EntryKind

from ..e2e import CALLBACK_SECRET, credits, ledger_kinds, ledger_ok, new_user, wait_for
from ..fakes.discord import FakeDiscord, listener_event
from ..inprocess import InProcess, in_process
from ..servers import free_port
from .test_trigger_lifecycle import API, callback, imagine

DEBIT_REFUND = [EntryKind.GRANT, EntryKind.DEBIT, EntryKind.REFUND]


@asynccontextmanager
async def serving(discord: FakeDiscord, home: Path, **settings: str) -> AsyncIterator[InProcess]:
    env = discord.env() | {
        "MJCORE_DATABASE_URL": f"sqlite:///{home / 'mj.db'}",
        "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
    }
    env |= {f"MJCORE_{name.upper()}": value for name, value in settings.items()}
    async with in_process(env, home) as app:
        yield app


def _ended(task: dict[str, Any]) -> bool:
    return task["status"] in ("SUCCESS", "FAILURE")


async def test_discord_400_fails_refunds_and_frees_the_slot(
    discord: FakeDiscord, tmp_path: Path
) -> None:
    async with serving(discord, tmp_path, mj_concurrency="1") as server:
        user = await new_user(server.database_url, 5)
        async with nullcontext(server.client) as client:
            discord.interaction_status = 400
            try:
                refused = await client.post(
                    f"{API}/imagine", json={"prompt": "a fox"}, headers=user.headers
                )
            finally:
                discord.interaction_status = 204
            accepted = await imagine(client, user)  # the one slot is free again

            body = refused.json()
            assert refused.status_code == 502 and body["code"] == 16
            assert "HTTP 400" in body["detail"]
            task = await wait_for(client, user, body["task_id"], _ended)
            assert task["status"] == "FAILURE" and task["refunded"] is True
            assert accepted["status"] == "SUBMITTED"
        assert await credits(server.database_url, user) == 4
        assert (await ledger_kinds(server.database_url, user))[:3] == DEBIT_REFUND


async def test_network_error_after_retries_fails_and_refunds(
    discord: FakeDiscord, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/api/v9"  # nothing listens there
    async with serving(discord, tmp_path, discord_api_url=closed) as server:
        user = await new_user(server.database_url, 5)
        async with nullcontext(server.client) as client:
            response = await client.post(
                f"{API}/imagine", json={"prompt": "a fox"}, headers=user.headers
            )
        assert response.status_code == 502
        assert "did not answer after 3 attempts" in response.json()["detail"]
        assert await credits(server.database_url, user) == 5
        assert await ledger_kinds(server.database_url, user) == DEBIT_REFUND


async def test_error_banned_and_duplicate_error_events_refund_once(
    client: httpx.AsyncClient, served: InProcess, discord: FakeDiscord
) -> None:
    user = await new_user(served.database_url, 5)
    stopped = await imagine(client, user)
    banned = await imagine(client, user)
    trigger_a, trigger_b = stopped["trigger_id"], banned["trigger_id"]
    error = listener_event(discord, "error", trigger_a, 11, f"**<#{trigger_a}#>x** (Stopped)")

    answers = await asyncio.gather(*(callback(client, error) for _ in range(5)))
    await callback(
        client, listener_event(discord, "banned", trigger_b, 12, f"**<#{trigger_b}#>x**")
    )

    assert sorted(a["message"] for a in answers) == ["success"] + ["unchanged"] * 4
    failed = await wait_for(client, user, stopped["task_id"], _ended)
    refused = await wait_for(client, user, banned["task_id"], _ended)
    assert failed["status"] == refused["status"] == "FAILURE"
    assert "Stopped" in failed["fail_reason"] and "banned" in refused["fail_reason"]
    assert await credits(served.database_url, user) == 5
    kinds = await ledger_kinds(served.database_url, user)
    assert kinds.count(EntryKind.REFUND) == 2 and kinds.count(EntryKind.DEBIT) == 2
    assert await ledger_ok(served.database_url)


async def test_timeout_sweep_fails_refunds_once_and_ignores_a_late_result(
    discord: FakeDiscord, tmp_path: Path
) -> None:
    async with serving(discord, tmp_path, mj_timeout_s="1", mj_sweep_interval_s="0.2") as server:
        user = await new_user(server.database_url, 5)
        async with nullcontext(server.client) as client:
            accepted = await imagine(client, user)
            task = await wait_for(client, user, accepted["task_id"], _ended)
            trigger = accepted["trigger_id"]
            late = listener_event(
                discord,
                "end",
                trigger,
                77,
                f"**<#{trigger}#>x** (fast)",
                msg_hash=str(uuid.uuid4()),
            )
            answer = await callback(client, late)
            await asyncio.sleep(0.5)  # a few more sweeps
            after = await wait_for(client, user, accepted["task_id"], _ended)

        assert task["status"] == "FAILURE" and "timed out" in task["fail_reason"]
        assert answer == {"message": "unchanged"} and after == task
        assert await credits(server.database_url, user) == 5
        assert await ledger_kinds(server.database_url, user) == DEBIT_REFUND


async def test_queue_limits_release_and_restart(discord: FakeDiscord, tmp_path: Path) -> None:
    limits = {"mj_concurrency": "1", "mj_queue_size": "1"}
    async with serving(discord, tmp_path, **limits) as server:
        user = await new_user(server.database_url, 10)
        async with nullcontext(server.client) as client:
            answers = await asyncio.gather(
                *(
                    client.post(f"{API}/imagine", json={"prompt": f"fox {i}"}, headers=user.headers)
                    for i in range(3)
                )
            )
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 200, 503]
        [full] = [a for a in answers if a.status_code == 503]
        assert full.json() == {"detail": "Task queue is full.", "code": 15}
        accepted = {a.json()["status"]: a.json() for a in answers if a.status_code == 200}
        running, waiting = accepted["SUBMITTED"], accepted["NOT_START"]
        assert await credits(server.database_url, user) == 8  # the refused one cost nothing

    # a restart keeps the running and the waiting task as they were
    async with serving(discord, tmp_path, **limits) as server:
        client = server.client
        seen = (await client.get(f"{API}/tasks", headers=user.headers)).json()["data"]
        states = {t["task_id"]: t["status"] for t in seen}
        assert states == {running["task_id"]: "SUBMITTED", waiting["task_id"]: "NOT_START"}
        assert f"<#{waiting['trigger_id']}#>" not in str(discord.prompts())

        release = {"trigger_id": running["trigger_id"]}
        listener = {"X-Callback-Secret": CALLBACK_SECRET}
        mine = await client.post(f"{API}/queue/release", json=release, headers=user.headers)
        keyless = await client.post(f"{API}/queue/release", json=release)
        first = await client.post(f"{API}/queue/release", json=release, headers=listener)
        second = await client.post(f"{API}/queue/release", json=release, headers=listener)
        unknown = await client.post(
            f"{API}/queue/release", json={"trigger_id": "123"}, headers=listener
        )
        promoted = await wait_for(
            client, user, waiting["task_id"], lambda t: t["status"] == "SUBMITTED"
        )

        # the user may not free a running job's slot; yokonsan's keyless call is a no-op
        assert mine.json()["released"] == keyless.json()["released"] == 0
        assert keyless.status_code == 200
        assert first.json()["released"] == 1
        assert second.json()["released"] == unknown.json()["released"] == 0
        assert promoted["started_at"] is not None
        assert any(f"<#{waiting['trigger_id']}#>" in p for p in discord.prompts())
        again = await client.post(f"{API}/imagine", json={"prompt": "x"}, headers=user.headers)
        assert again.json()["status"] == "NOT_START"  # the slot went to the promoted task


async def test_a_terminal_event_frees_the_slot_for_the_next_job(
    discord: FakeDiscord, tmp_path: Path
) -> None:
    async with serving(discord, tmp_path, mj_concurrency="1", mj_queue_size="5") as server:
        user = await new_user(server.database_url, 10)
        async with nullcontext(server.client) as client:
            first = await imagine(client, user)
            second = await imagine(client, user)
            trigger = first["trigger_id"]
            done = listener_event(
                discord,
                "end",
                trigger,
                90,
                f"**<#{trigger}#>x** (fast)",
                msg_hash=str(uuid.uuid4()),
            )
            await callback(client, done)
            started = await wait_for(
                client, user, second["task_id"], lambda t: t["status"] == "SUBMITTED"
            )
        assert second["status"] == "NOT_START" and started["status"] == "SUBMITTED"


async def test_banned_words_refuse_the_prompt_and_charge_nothing(
    discord: FakeDiscord, tmp_path: Path
) -> None:
    async with serving(discord, tmp_path, banned_words="gore,big nose") as server:
        user = await new_user(server.database_url, 5)
        async with nullcontext(server.client) as client:
            phrase = await client.post(
                f"{API}/imagine", json={"prompt": "A BIG   nose clown"}, headers=user.headers
            )
            word = await client.post(
                f"{API}/imagine", json={"prompt": "lots of Gore!"}, headers=user.headers
            )
            fine = await client.post(
                f"{API}/imagine", json={"prompt": "gorgeous big noses"}, headers=user.headers
            )
        assert phrase.status_code == word.status_code == 400
        assert phrase.json()["code"] == word.json()["code"] == 14
        assert fine.status_code == 200
        assert await credits(server.database_url, user) == 4


async def test_the_callback_secret_is_required_when_set(
    discord: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(discord, tmp_path, callback_secret="s3cret-value") as server:
        event = {"type": "end", "id": 1, "content": "<#1#>", "trigger_id": "1"}
        async with nullcontext(server.client) as client:
            bare = await client.post(f"{API}/midjourney/result", json=event)
            wrong = await client.post(f"{API}/midjourney/result?secret=nope", json=event)
            query = await client.post(f"{API}/midjourney/result?secret=s3cret-value", json=event)
            header = await client.post(
                f"{API}/midjourney/result",
                json=event,
                headers={"X-Callback-Secret": "s3cret-value"},
            )
        assert bare.status_code == wrong.status_code == 403
        assert query.json() == header.json() == {"message": "ignored"}
        ours = [r.getMessage() for r in caplog.records if r.name.startswith("mjcore")]
        assert ours and not any("s3cret-value" in line for line in ours)


async def test_finding_1_without_a_callback_secret_the_http_callback_does_not_exist(
    discord: FakeDiscord, tmp_path: Path
) -> None:
    async with in_process(discord.env(), tmp_path) as server:
        user = await new_user(server.database_url, 5)
        async with nullcontext(server.client) as client:
            grid = await imagine(client, user)
            forged = {
                "type": "error",
                "id": 1,
                "content": f"**<#{grid['trigger_id']}#>a red fox** - <@1> (Stopped)",
                "trigger_id": grid["trigger_id"],
            }
            answers = [
                await client.post(f"{API}/midjourney/result", json=forged),
                await client.post(f"{API}/midjourney/result?secret=", json=forged),
                await client.post(
                    f"{API}/midjourney/result", json=forged, headers={"X-Callback-Secret": "x"}
                ),
            ]
            task = await client.get(f"{API}/task/{grid['task_id']}", headers=user.headers)
        assert [a.status_code for a in answers] == [404, 404, 404]
        assert task.json()["status"] == "SUBMITTED"  # the forged error changed nothing
        assert await credits(server.database_url, user) == 4

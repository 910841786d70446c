"""Our own listener, end to end with no HTTP callback.

mjcore (in process) sends interactions to the fake Discord; the fake Midjourney bot posts
real-shaped messages on the fake gateway; discord.py, inside mjcore, hears them and the
core moves the tasks. Nobody posts to ``/midjourney/result``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from entrypoints.bootstrap import open_store
from mjcore.clock import system_clock
from mjcore.ledger import EntryKind
from mjcore.services.leases import Lease

from ..e2e import User, credits, ledger_kinds, ledger_ok, new_user, wait_for
from ..fakes.discord import CHANNEL, FakeDiscord
from ..fakes.images import png
from ..fakes.midjourney_bot import Failure
from ..inprocess import InProcess, listening, until
from ..support import MIDJOURNEY_WORDS

API = "/v1/api/trigger"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord(midjourney=True, heartbeat_interval_ms=500) as fake:
        yield fake
        assert fake.bot.errors == []


@pytest.fixture
async def app(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[InProcess]:
    grace, timeout = "0.3", "1"
    async with listening(
        fake, tmp_path, listener_deleted_grace_s=grace, discord_timeout_s=timeout
    ) as running:
        yield running


def _ended(task: dict[str, Any]) -> bool:
    return task["status"] in ("SUCCESS", "FAILURE")


async def _post(app: InProcess, user: User, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await app.client.post(f"{API}/{path}", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _done(app: InProcess, user: User, accepted: dict[str, Any]) -> dict[str, Any]:
    return await wait_for(app.client, user, accepted["task_id"], _ended)


async def test_every_action_finishes_through_our_own_listener(
    app: InProcess, fake: FakeDiscord
) -> None:
    user = await new_user(app.database_url, 20)
    grid = await _done(app, user, await _post(app, user, "imagine", {"prompt": "a red fox"}))
    assert grid["status"] == "SUCCESS", grid
    assert grid["msg_hash"] in fake.bot.hashes(grid["trigger_id"])
    assert grid["buttons"] == {"msg_id": grid["msg_id"], "msg_hash": grid["msg_hash"]}

    by_task = {"task_id": grid["task_id"]}
    follow_ups = {
        "upscale": by_task | {"index": 1},
        "variation": by_task | {"index": 2},
        "expand": by_task | {"direction": "left"},
        "zoomout": by_task | {"zoomout": 50},
        "reset": by_task,
        "solo_high_variation": by_task,
    }
    accepted = [await _post(app, user, path, body) for path, body in follow_ups.items()]
    upload = (
        await app.client.post(
            f"{API}/upload", files={"file": ("fox.png", png(), "image/png")}, headers=user.headers
        )
    ).json()
    accepted.append(await _post(app, user, "describe", upload))  # the whole /upload answer

    finished = [await _done(app, user, a) for a in accepted]
    assert [t["status"] for t in finished] == ["SUCCESS"] * 7, finished
    assert all(t["msg_hash"] for t in finished[:-1])
    assert len(finished[-1]["prompts"]) == 4
    assert await credits(app.database_url, user) == 20 - 8
    # the HTTP callback does not even exist: no secret is configured
    forged = {"type": "end", "id": 1, "trigger_id": grid["trigger_id"]}
    assert (await app.client.post(f"{API}/midjourney/result", json=forged)).status_code == 404


@pytest.mark.parametrize(
    "prompt",
    MIDJOURNEY_WORDS,
)
async def test_prompts_in_midjourneys_own_words_finish(
    app: InProcess, fake: FakeDiscord, prompt: str
) -> None:
    user = await new_user(app.database_url, 5)
    grid = await _done(app, user, await _post(app, user, "imagine", {"prompt": prompt}))
    upscale = await _post(app, user, "upscale", {"task_id": grid["task_id"], "index": 3})
    upscaled = await _done(app, user, upscale)

    assert (grid["status"], upscaled["status"]) == ("SUCCESS", "SUCCESS"), (grid, upscaled)
    assert grid["progress"] == upscaled["progress"] == 100


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Failure.INVALID_PARAMETER, "ERROR"),
        (Failure.BANNED_PROMPT_DETECTED, "BANNED"),
        (Failure.ACTION_NEEDED, "ERROR"),
        (Failure.STOPPED, "ERROR"),
        (Failure.DELETED, "BANNED"),
    ],
)
async def test_a_job_midjourney_refuses_is_refunded_once(
    app: InProcess, fake: FakeDiscord, failure: Failure, kind: str
) -> None:
    user = await new_user(app.database_url, 5)
    fake.bot.fail_next(failure)
    failed = await _done(app, user, await _post(app, user, "imagine", {"prompt": "a red fox"}))

    assert failed["status"] == "FAILURE" and failed["refunded"], failed
    result = await app.client.get(f"{API}/result/{failed['task_id']}", headers=user.headers)
    assert result.json()["data"]["task_status"] == kind
    await asyncio.sleep(0.5)  # later messages of the job change nothing
    assert await ledger_kinds(app.database_url, user) == [
        EntryKind.GRANT,
        EntryKind.DEBIT,
        EntryKind.REFUND,
    ]
    assert await credits(app.database_url, user) == 5


async def test_a_queued_job_still_finishes(app: InProcess, fake: FakeDiscord) -> None:
    user = await new_user(app.database_url, 5)
    fake.bot.fail_next(Failure.JOB_QUEUED)
    done = await _done(app, user, await _post(app, user, "imagine", {"prompt": "a red fox"}))
    assert done["status"] == "SUCCESS"


async def test_a_dropped_gateway_connection_resumes_and_loses_no_result(
    app: InProcess, fake: FakeDiscord
) -> None:
    user = await new_user(app.database_url, 5)
    fake.bot.pause_before_final()
    try:
        accepted = await _post(app, user, "imagine", {"prompt": "a red fox"})
        await wait_for(app.client, user, accepted["task_id"], lambda t: t["progress"] > 0)
        resumes = fake.gateway.resumes
        fake.gateway.drop_connection()
    finally:
        fake.bot.release()
    done = await _done(app, user, accepted)

    assert done["status"] == "SUCCESS"
    await until(lambda: fake.gateway.resumes > resumes)
    assert await ledger_ok(app.database_url)


async def test_a_rate_limited_interaction_is_sent_once_after_the_wait(
    app: InProcess, fake: FakeDiscord
) -> None:
    user = await new_user(app.database_url, 5)
    fake.rate_limit_next(retry_after=1.0)
    started = asyncio.get_running_loop().time()

    accepted = await _post(app, user, "imagine", {"prompt": "a patient fox"})

    assert asyncio.get_running_loop().time() - started >= 1.0
    sent = [p for p in fake.prompts() if f"<#{accepted['trigger_id']}#>" in p]
    assert len(sent) == 1 and fake.rate_limited >= 1
    assert (await _done(app, user, accepted))["status"] == "SUCCESS"


async def test_an_interaction_that_timed_out_after_sending_is_not_sent_again(
    app: InProcess, fake: FakeDiscord
) -> None:
    user = await new_user(app.database_url, 5)
    fake.hang_next()

    accepted = await _post(app, user, "imagine", {"prompt": "a slow fox"})  # after 1 s

    done = await _done(app, user, accepted)  # Discord had it: the job ran all the same
    sent = [p for p in fake.prompts() if f"<#{accepted['trigger_id']}#>" in p]
    assert len(sent) == 1 and done["status"] == "SUCCESS"
    assert await credits(app.database_url, user) == 4


async def test_the_listener_holds_the_channels_lease(app: InProcess, fake: FakeDiscord) -> None:
    store = await open_store(app.database_url, 2)
    try:
        rival = Lease(store, system_clock, f"discord-listener:{CHANNEL}", "a rival", 2)
        assert not await rival.hold()
    finally:
        await store.close()


async def test_yokonsans_listener_release_is_harmless(app: InProcess, fake: FakeDiscord) -> None:
    user = await new_user(app.database_url, 5)
    accepted = await _post(app, user, "imagine", {"prompt": "a red fox"})
    release = await app.client.post(
        f"{API}/queue/release", json={"trigger_id": int(accepted["trigger_id"])}
    )
    assert release.status_code == 200 and release.json()["released"] == 0
    assert (await _done(app, user, accepted))["status"] == "SUCCESS"

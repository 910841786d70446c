"""The fake Discord gateway and Midjourney bot, proved against the real discord.py client."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
import yarl
from attrs import define, field

with warnings.catch_warnings():
    # discord.py imports the stdlib audioop (voice), deprecated since Python 3.11
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord.gateway import DiscordWebSocket

from ..fakes.discord import BOT_ID, BOT_TOKEN, CHANNEL, GUILD, TOKEN, USER_ID, FakeDiscord
from ..fakes.midjourney_bot import (
    DESCRIBE_PROMPTS,
    EPHEMERAL,
    ERROR_COLOR,
    EXPLORE_LINE,
    KEYCAPS,
    LOADING,
    MIDJOURNEY_ID,
    WARNING_COLOR,
    Failure,
)

TRIGGER = "1234567890123456"
PROMPT = f"<#{TRIGGER}#>a red fox"
INTENTS = discord.Intents(guilds=True, guild_messages=True, message_content=True)
AUTH = {"Authorization": TOKEN}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    """A fake with the bot on, and discord.py's REST base and gateway pointed at it."""
    with FakeDiscord(midjourney=True, heartbeat_interval_ms=100) as fake:
        point_discord_py_at(fake, monkeypatch)
        yield fake
        assert fake.bot.errors == []


def point_discord_py_at(fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch) -> None:
    # both are class attributes read at use: every Route and every first connect
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_url)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.ws_url))


@define
class Listener:
    """A discord.py client and everything it was told, in order."""

    client: discord.Client
    events: list[tuple[str, int]] = field(factory=list)
    messages: dict[int, discord.Message] = field(factory=dict)
    edits: list[tuple[str, str]] = field(factory=list)
    readies: int = 0
    resumes: int = 0

    def contents(self) -> list[str]:
        return [m.content for m in self.messages.values()]


class Client(discord.Client):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every IDENTIFY but the first; tests need not."""


@asynccontextmanager
async def listening(intents: discord.Intents = INTENTS) -> AsyncIterator[Listener]:
    client = Client(intents=intents, guild_ready_timeout=0.05)
    listener = Listener(client)

    @client.event
    async def on_ready() -> None:
        listener.readies += 1

    @client.event
    async def on_resumed() -> None:
        listener.resumes += 1

    @client.event
    async def on_message(message: discord.Message) -> None:
        listener.events.append(("create", message.id))
        listener.messages[message.id] = message

    @client.event
    async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
        listener.events.append(("update", payload.message_id))
        listener.messages[payload.message_id] = payload.message

    @client.event
    async def on_message_edit(before: discord.Message, after: discord.Message) -> None:
        listener.edits.append((before.content, after.content))

    @client.event
    async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
        listener.events.append(("delete", payload.message_id))

    async with client:
        running = asyncio.create_task(client.start(BOT_TOKEN))
        try:
            await until(lambda: listener.readies == 1 or running.done())
            yield listener
        finally:
            await client.close()
            await running


async def until(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def envelope(kind: int, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An interaction as mjcore's provider sends it with the user token."""
    return {
        "type": kind,
        "application_id": MIDJOURNEY_ID,
        "guild_id": GUILD,
        "channel_id": CHANNEL,
        "session_id": uuid.uuid4().hex,
        "nonce": str(1_200_000_000_000_000_000 + uuid.uuid4().int % 10**15),
        "data": data,
        **extra,
    }


def imagine(prompt: str = PROMPT) -> dict[str, Any]:
    option = {"type": 3, "name": "prompt", "value": prompt}
    data = {"version": "1", "id": "938956540159881230", "name": "imagine", "type": 1}
    return envelope(2, data | {"options": [option], "attachments": []})


def press(message_id: str, custom_id: str) -> dict[str, Any]:
    data = {"component_type": 2, "custom_id": custom_id}
    return envelope(3, data, message_flags=0, message_id=message_id)


def describe(uploaded: str) -> dict[str, Any]:
    name = uploaded.rsplit("/", 1)[-1]
    data = {"version": "1", "id": "1092492867185950852", "name": "describe", "type": 1}
    files = [{"id": "0", "filename": name, "uploaded_filename": uploaded}]
    options = [{"type": 11, "name": "image", "value": 0}]
    return envelope(2, data | {"options": options, "attachments": files})


def custom_ids(message: discord.Message) -> list[str | None]:
    """The custom ids of a message's buttons, row by row."""
    return [
        button.custom_id
        for row in message.components
        if isinstance(row, discord.components.ActionRow)
        for button in row.children
        if isinstance(button, discord.components.Button)
    ]


async def interact(fake: FakeDiscord, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.post(f"{fake.api_url}/interactions", json=body, headers=AUTH)


async def finished_job(fake: FakeDiscord, body: dict[str, Any]) -> None:
    jobs = len(fake.bot.jobs)
    assert (await interact(fake, body)).status_code == 204
    await until(lambda: len(fake.bot.jobs) == jobs + 1 and fake.bot.running == 0)


async def grid(fake: FakeDiscord) -> tuple[str, str]:
    """Run an imagine to its end: the grid message's id and hash."""
    await finished_job(fake, imagine())
    job = fake.bot.jobs[-1]
    assert job.message_id is not None and job.msg_hash is not None
    return job.message_id, job.msg_hash


# -- the gateway ----------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["zlib-stream", "text-frames"])
async def test_discord_py_logs_in_identifies_and_caches_the_channel(
    fake: FakeDiscord, compress: bool
) -> None:
    fake.gateway.compress = compress
    async with listening() as listener:
        client = listener.client
        assert client.user is not None and client.user.id == int(BOT_ID)
        channel = client.get_channel(int(CHANNEL))
        assert isinstance(channel, discord.TextChannel) and channel.guild.id == int(GUILD)

    assert fake.api_calls == ["GET /api/v9/users/@me", "GET /api/v9/oauth2/applications/@me"]
    assert fake.unhandled == []
    assert fake.gateway.handshakes == [
        {"path": "/gateway", "v": "10", "encoding": "json", "compress": "zlib-stream"}
    ]
    assert fake.gateway.identify_payloads[0]["intents"] == INTENTS.value
    assert (fake.gateway.identifies, fake.gateway.resumes) == (1, 0)
    # Client.close() asks for 1000, but its reader task closes first with 4000, so the
    # session stays resumable on Discord's side
    await until(lambda: fake.gateway.close_codes == [4000])
    assert len(fake.gateway.sessions) == 1


async def test_heartbeats_are_acknowledged(fake: FakeDiscord) -> None:
    async with listening() as listener:
        await until(lambda: fake.gateway.heartbeats >= 3)
        assert math.isfinite(listener.client.latency), "latency is set by a HEARTBEAT_ACK"


async def test_an_imagine_arrives_as_start_progress_result_then_delete(fake: FakeDiscord) -> None:
    async with listening() as listener:
        await finished_job(fake, imagine())
        await until(lambda: len(listener.events) == len(fake.bot.actions))

    job = fake.bot.jobs[0]
    start, final = job.progress_id, job.message_id
    assert start is not None and final is not None
    assert [kind for kind, _ in listener.events] == [
        "create", "update", "update", "create", "delete"
    ]  # fmt: skip
    assert listener.events == [(kind, int(mid)) for kind, mid in fake.bot.actions]
    mention = f"<@{USER_ID}>"
    assert [after for _, after in listener.edits] == [
        f"**{PROMPT}** - {mention} (33%) (fast)",
        f"**{PROMPT}** - {mention} (67%) (fast)",
    ]
    assert listener.edits[0][0] == f"**{PROMPT}** - {mention} (Waiting to start)"
    result = listener.messages[int(final)]
    assert result.content == f"**{PROMPT}** - {mention} (fast)"
    assert result.author.id == int(MIDJOURNEY_ID) and result.author.bot
    assert result.type is discord.MessageType.default
    assert fake.bot.hashes(TRIGGER) == [job.msg_hash]
    assert result.attachments[0].filename == f"gaosh_{TRIGGER}a_red_fox_{job.msg_hash}.png"
    buttons = custom_ids(result)
    assert f"MJ::JOB::upsample::1::{job.msg_hash}" in buttons
    assert f"MJ::JOB::reroll::0::{job.msg_hash}::SOLO" in buttons
    first = listener.messages[int(start)]
    assert first.type is discord.MessageType.chat_input_command and first.nonce is not None
    async with httpx.AsyncClient() as http:
        image = await http.get(result.attachments[0].url)
    assert image.content == fake.cdn_image


@pytest.mark.parametrize("hold", [True, False], ids=["while-away", "mid-job"])
async def test_a_dropped_socket_resumes_with_no_event_lost_or_repeated(
    fake: FakeDiscord, hold: bool
) -> None:
    fake.bot.enable(steps=6, delay_s=0.01)
    async with listening() as listener:
        if hold:
            fake.gateway.hold()
            fake.gateway.drop_connection()
            await finished_job(fake, imagine())
            assert fake.gateway.connected == 0 and listener.events == []
            fake.gateway.release()
        else:
            assert (await interact(fake, imagine())).status_code == 204
            await until(lambda: len(listener.events) >= 2)
            fake.gateway.drop_connection()
            await until(lambda: fake.bot.running == 0)
        await until(lambda: len(listener.events) >= len(fake.bot.actions))
        await asyncio.sleep(0.05)  # room for a duplicate to show up

        assert listener.events == [(kind, int(mid)) for kind, mid in fake.bot.actions]
        assert listener.resumes == 1 and listener.readies == 1
    gateway = fake.gateway
    assert (gateway.identifies, gateway.resumes, gateway.connections) == (1, 1, 2)
    assert gateway.handshakes[1]["path"] == "/gateway/resume", "READY's resume_gateway_url"


async def test_op7_reconnect_makes_the_client_resume(fake: FakeDiscord) -> None:
    async with listening() as listener:
        fake.gateway.request_reconnect()
        await until(lambda: listener.resumes == 1)
        await finished_job(fake, imagine())
        await until(lambda: len(listener.events) == len(fake.bot.actions))

    assert (fake.gateway.identifies, fake.gateway.resumes, fake.gateway.connections) == (1, 1, 2)


@pytest.mark.parametrize("how", ["resume-unknown-session", "op9-on-live-socket"])
async def test_an_invalid_session_makes_the_client_identify_again(
    fake: FakeDiscord, how: str
) -> None:
    async with listening() as listener:
        if how == "resume-unknown-session":
            fake.gateway.forget_sessions()
            fake.gateway.drop_connection()
        else:
            fake.gateway.invalid_session(resumable=False)
        await until(lambda: listener.readies == 2)
        await finished_job(fake, imagine())
        await until(lambda: len(listener.events) == len(fake.bot.actions))

    gateway = fake.gateway
    assert (gateway.identifies, gateway.invalid_sessions, listener.resumes) == (2, 1, 0)
    assert gateway.resumes == (1 if how == "resume-unknown-session" else 0)


async def test_a_wrong_bot_token_is_a_login_failure(fake: FakeDiscord) -> None:
    client = discord.Client(intents=INTENTS)
    async with client:
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")

    assert fake.bad_bot_auth == 1 and fake.gateway.connections == 0


async def test_without_the_message_content_intent_bodies_arrive_blank(fake: FakeDiscord) -> None:
    async with listening(discord.Intents(guilds=True, guild_messages=True)) as listener:
        await finished_job(fake, imagine())
        await until(lambda: len(listener.events) == len(fake.bot.actions))

    assert set(listener.contents()) == {""}


async def test_channel_history_serves_the_bots_messages_newest_first(fake: FakeDiscord) -> None:
    await grid(fake)
    await grid(fake)
    finals = [job.message_id for job in fake.bot.jobs]
    async with listening() as listener:
        channel = listener.client.get_channel(int(CHANNEL))
        assert isinstance(channel, discord.TextChannel)
        newest_first = [m async for m in channel.history(limit=10)]
        after_first = [m async for m in channel.history(after=discord.Object(int(str(finals[0]))))]

    assert [str(m.id) for m in newest_first] == finals[::-1], "progress messages were deleted"
    assert all(m.author.id == int(MIDJOURNEY_ID) for m in newest_first)
    assert [str(m.id) for m in after_first] == finals[1:]
    async with httpx.AsyncClient(base_url=fake.api_url) as http:
        page = await http.get(f"/channels/{CHANNEL}/messages?limit=1", headers=AUTH)
        wrong_limit = await http.get(f"/channels/{CHANNEL}/messages?limit=0", headers=AUTH)
        no_token = await http.get(f"/channels/{CHANNEL}/messages")
    assert [m["id"] for m in page.json()] == finals[-1:]
    assert (wrong_limit.status_code, no_token.status_code) == (400, 401)


# -- the Midjourney bot ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("button", "wording"),
    [
        ("MJ::JOB::variation::2::{h}", "Variations by"),
        ("MJ::JOB::variation::1::{h}::SOLO", "Variations by"),
        ("MJ::JOB::low_variation::1::{h}::SOLO", "Variations (Subtle) by"),
        ("MJ::JOB::high_variation::1::{h}::SOLO", "Variations (Strong) by"),
        ("MJ::Outpaint::50::1::{h}::SOLO", "Zoom Out by"),
        ("MJ::JOB::pan_left::1::{h}::SOLO", "Pan Left by"),
        ("MJ::JOB::reroll::0::{h}::SOLO", ""),
    ],
)
async def test_follow_ups_reply_to_the_grid_in_midjourneys_words(
    fake: FakeDiscord, button: str, wording: str
) -> None:
    grid_id, grid_hash = await grid(fake)
    async with listening() as listener:
        await finished_job(fake, press(grid_id, button.format(h=grid_hash)))
        job = fake.bot.jobs[-1]
        await until(lambda: int(str(job.message_id)) in listener.messages)

    by = f"{wording} " if wording else ""
    result = listener.messages[int(str(job.message_id))]
    assert result.content == f"**{PROMPT}** - {by}<@{USER_ID}> (fast)"
    assert result.type is discord.MessageType.reply
    assert result.reference is not None and result.reference.message_id == int(grid_id)
    assert fake.bot.hashes(TRIGGER) == [grid_hash, job.msg_hash]
    assert any("(33%)" in content for _, content in listener.edits)


async def test_an_upscale_posts_image_n_at_once_with_its_buttons(fake: FakeDiscord) -> None:
    grid_id, grid_hash = await grid(fake)
    before = len(fake.bot.actions)
    async with listening() as listener:
        await finished_job(fake, press(grid_id, f"MJ::JOB::upsample::2::{grid_hash}"))
        job = fake.bot.jobs[-1]
        await until(lambda: int(str(job.message_id)) in listener.messages)

    assert [kind for kind, _ in fake.bot.actions[before:]] == ["create"], "no progress"
    result = listener.messages[int(str(job.message_id))]
    assert result.content == f"**{PROMPT}** - Image #2 <@{USER_ID}>"
    assert result.reference is not None and result.reference.message_id == int(grid_id)
    buttons = custom_ids(result)
    for expected in ("MJ::Outpaint::50::1::{h}::SOLO", "MJ::JOB::pan_left::1::{h}::SOLO"):
        assert expected.format(h=job.msg_hash) in buttons


async def test_describe_edits_its_answer_into_four_keycap_prompts(fake: FakeDiscord) -> None:
    uploaded = f"{uuid.uuid4()}/{TRIGGER}.png"
    async with listening() as listener:
        await finished_job(fake, describe(uploaded))
        await until(lambda: len(listener.events) == 2)

    job = fake.bot.jobs[0]
    answer_id = int(str(job.message_id))
    assert listener.events == [("create", answer_id), ("update", answer_id)]
    assert fake.bot.posted[0]["flags"] == LOADING and fake.bot.posted[0]["type"] == 20
    embed = listener.messages[answer_id].embeds[0]
    assert embed.image.width and embed.image.height, "what yokonsan's listener waits for"
    assert str(embed.description).split("\n\n") == [
        f"{key} {text}" for key, text in zip(KEYCAPS, DESCRIBE_PROMPTS, strict=True)
    ]
    path = yarl.URL(str(embed.image.url)).path
    assert path == f"/ephemeral-attachments/{CHANNEL}/{path.split('/')[3]}/{TRIGGER}.png"


@pytest.mark.parametrize(
    "failure",
    [
        Failure.INVALID_PARAMETER,
        Failure.BANNED_PROMPT_DETECTED,
        Failure.BANNED_PROMPT,
        Failure.ACTION_NEEDED,
    ],
)
async def test_an_error_embed_is_all_a_failed_job_posts(
    fake: FakeDiscord, failure: Failure
) -> None:
    fake.bot.fail_next(failure)
    await finished_job(fake, imagine())
    await finished_job(fake, imagine())

    first, second = fake.bot.jobs
    assert first.failure is failure and second.failure is None, "one failure, then normal"
    embed = fake.bot.posted[0]["embeds"][0]
    assert (embed["title"], embed["color"]) == (failure.value, ERROR_COLOR)
    assert embed["footer"]["text"] == f"/imagine {PROMPT}"
    assert fake.bot.posted[0]["nonce"] == fake.sent()[0]["nonce"]
    assert fake.bot.hashes(TRIGGER) == [second.msg_hash]


async def test_job_queued_warns_then_runs_the_job(fake: FakeDiscord) -> None:
    fake.bot.fail_next(Failure.JOB_QUEUED)
    await finished_job(fake, imagine())

    warning = fake.bot.posted[0]["embeds"][0]
    assert (warning["title"], warning["color"]) == ("Job queued", WARNING_COLOR)
    assert len(fake.bot.hashes(TRIGGER)) == 1


@pytest.mark.parametrize(
    ("failure", "actions", "last_content"),
    [
        (Failure.STOPPED, ["create", "update", "update", "update"], "(Stopped)"),
        (Failure.DELETED, ["create", "delete"], None),
        (Failure.NO_FINAL, ["create", "update", "update"], "(67%) (fast)"),
    ],
)
async def test_jobs_that_end_without_a_result(
    fake: FakeDiscord, failure: Failure, actions: list[str], last_content: str | None
) -> None:
    fake.bot.fail_next(failure)
    await finished_job(fake, imagine())

    assert [kind for kind, _ in fake.bot.actions] == actions
    assert fake.bot.hashes(TRIGGER) == []
    progress = fake.get_message(str(fake.bot.jobs[0].progress_id))
    if last_content is None:
        assert progress is None
    else:
        assert progress is not None and progress["content"].endswith(last_content)


async def test_pause_before_final_holds_results_until_released(fake: FakeDiscord) -> None:
    fake.bot.pause_before_final()
    assert (await interact(fake, imagine())).status_code == 204
    await until(lambda: fake.bot.waiting == 1)
    await asyncio.sleep(0.05)
    assert fake.bot.hashes(TRIGGER) == [] and fake.bot.running == 1

    fake.bot.release()
    await until(lambda: fake.bot.running == 0)
    assert len(fake.bot.hashes(TRIGGER)) == 1


async def test_a_button_on_an_unknown_message_is_refused(fake: FakeDiscord) -> None:
    response = await interact(fake, press("1", f"MJ::JOB::upsample::1::{uuid.uuid4()}"))

    assert response.status_code == 404 and response.json()["code"] == 10008
    assert fake.bot.jobs == []


async def test_rate_limit_knob_answers_429_like_discord(fake: FakeDiscord) -> None:
    fake.rate_limit_next(2)
    answers = [await interact(fake, imagine()) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 204]
    assert answers[0].headers["Retry-After"] == "1"
    body = {"message": "You are being rate limited.", "retry_after": 1.0, "global": False}
    assert answers[0].json() == body
    assert (fake.interaction_attempts, fake.rate_limited, len(fake.sent())) == (3, 2, 1)


async def test_hang_knob_acts_on_the_interaction_but_never_answers(fake: FakeDiscord) -> None:
    fake.hang_next()
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=0.3)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{fake.api_url}/interactions", json=imagine(), headers=AUTH)
    await until(lambda: fake.bot.running == 0)

    assert (fake.hung, len(fake.sent())) == (1, 1)
    assert len(fake.bot.hashes(TRIGGER)) == 1, "Discord acted on it: resubmitting doubles it"


async def test_without_the_bot_the_fake_only_records() -> None:
    with FakeDiscord() as fake:
        response = await interact(fake, imagine())

    assert response.status_code == 204 and len(fake.sent()) == 1
    assert fake.history() == [] and fake.bot.jobs == []


async def test_calls_no_route_serves_are_recorded(fake: FakeDiscord) -> None:
    async with httpx.AsyncClient(base_url=fake.api_url) as http:
        missing = await http.get(f"/guilds/{GUILD}/members", headers=AUTH)
        wrong_method = await http.get("/interactions", headers=AUTH)

    assert (missing.status_code, wrong_method.status_code) == (404, 405)
    assert missing.json() == {"message": "404: Not Found", "code": 0}
    assert fake.unhandled == [f"GET /api/v9/guilds/{GUILD}/members", "GET /api/v9/interactions"]


async def test_ephemeral_notices_never_reach_the_channel(fake: FakeDiscord) -> None:
    fake.bot.ephemeral_notices = True
    fake.bot.fail_next(Failure.BANNED_PROMPT_DETECTED)
    await finished_job(fake, imagine())

    assert fake.history() == [] and fake.bot.actions == []
    assert [n["flags"] for n in fake.bot.ephemeral] == [EPHEMERAL]


async def test_previews_and_result_share_the_job_id_and_the_footer_is_a_knob(
    fake: FakeDiscord,
) -> None:
    fake.bot.footer = EXPLORE_LINE
    async with listening() as listener:
        await finished_job(fake, imagine())
        await until(lambda: len(listener.events) == len(fake.bot.actions))

    job = fake.bot.jobs[0]
    last_progress = listener.messages[int(str(job.progress_id))]
    result = listener.messages[int(str(job.message_id))]
    assert last_progress.attachments[0].filename == f"{job.job_id}_grid_0.webp"
    assert result.attachments[0].filename == f"gaosh_{TRIGGER}a_red_fox_{job.job_id}.png"
    assert result.content.endswith(f"(fast){EXPLORE_LINE}") and job.msg_hash == job.job_id


async def test_identify_with_a_wrong_token_is_closed_4004(fake: FakeDiscord) -> None:
    async with websockets.connect(f"{fake.ws_url}?v=10&encoding=json") as socket:
        hello = json.loads(await socket.recv())
        await socket.send(json.dumps({"op": 2, "d": {"token": "wrong", "intents": 0}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()

    assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 100
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4004
    assert fake.gateway.identifies == 0 and fake.gateway.sessions == {}

"""A scripted Midjourney bot for the fake Discord.

When enabled, every accepted interaction becomes a job that posts, edits and deletes
messages in the channel as Midjourney does, and the fake's gateway dispatches them. The
wording is what Midjourney writes and what upstream listeners match: novicezk's
midjourney-proxy ``wss/handle/*Handler.java`` regexes, yokonsan's and niehao's
discord.py listeners (``Waiting to start`` → start, ``(Stopped)`` → error, edits →
progress, a delete before the end → banned).

Jobs run as asyncio tasks on the server's loop; steps are ``delay_s`` apart.
"""

from __future__ import annotations

import asyncio
import enum
import re
import secrets
import threading
import uuid
from collections import deque
from typing import Any, Protocol

from attrs import define, field

from .gateway import Payload, on_loop, snowflake

MIDJOURNEY_ID = "936929561302675456"
"""Midjourney's application id, which is also its bot user's id."""
MIDJOURNEY = {
    "id": MIDJOURNEY_ID,
    "username": "Midjourney Bot",
    "global_name": None,
    "discriminator": "9282",
    "avatar": "f6ce562a6b4979c4b1cbc5b436d3be76",
    "avatar_decoration_data": None,
    "bot": True,
    "public_flags": 589824,
}
ERROR_COLOR, WARNING_COLOR = 16711680, 16239475
LOADING, EPHEMERAL = 1 << 7, 1 << 6
"""Message flags: a deferred answer ("Midjourney Bot is thinking..."); only-you-can-see-this."""
EXPLORE_LINE = (
    "\n-# Create, explore, and organize on "
    "[midjourney.com](<https://midjourney.com/imagine?from_discord=1>)"
)
"""The line Midjourney has appended to results since 2025 (set ``bot.footer`` to it)."""

DESCRIBE_PROMPTS = (
    "a red fox standing in fresh snow, in the style of soft focus wildlife photography --ar 1:1",
    "a small fox in a winter forest, minimalist composition, muted tones --ar 1:1",
    "red fox portrait, national geographic style, shallow depth of field --ar 1:1",
    "an orange fox on white ground, japanese woodblock print --ar 1:1",
)
"""The four prompts every /describe answers with, in order."""
KEYCAPS = ("1\ufe0f\u20e3", "2\ufe0f\u20e3", "3\ufe0f\u20e3", "4\ufe0f\u20e3")

_TRIGGER = re.compile(r"<#(\w+?)#>")
_SHOWN_PROMPT = re.compile(r"^\*\*(.*)\*\* - ", re.DOTALL)
_URL = re.compile(r"(?<!<)https?://\S+")
_HASH = r"[0-9a-f-]{36}"


class Failure(enum.StrEnum):
    """How the next job goes wrong (see :meth:`MidjourneyBot.fail_next`)."""

    INVALID_PARAMETER = "Invalid parameter"
    BANNED_PROMPT_DETECTED = "Banned prompt detected"
    BANNED_PROMPT = "Banned prompt"
    ACTION_NEEDED = "Action needed to continue"
    """The CAPTCHA embed, with a Verify button."""
    JOB_QUEUED = "Job queued"
    """A warning embed first; the job then runs as usual."""
    STOPPED = "Stopped"
    """The progress message is edited to ``(Stopped)``; no final message."""
    DELETED = "Deleted"
    """The start message is deleted before any result (a moderation removal)."""
    NO_FINAL = "No final"
    """Progress, then silence: the progress message stays, nothing else comes."""


_EMBED_FAILURES = {
    Failure.INVALID_PARAMETER: (
        "Invalid value provided for argument **ar**: `7:0` is not a valid aspect ratio."
    ),
    Failure.BANNED_PROMPT_DETECTED: (
        "Sorry! Our AI moderator thinks this prompt is probably against our community "
        "standards.\n\nPlease review our current community standards:\n\n**ALLOWED**\n"
        "- Any image up to PG-13 rating involving fiction, fantasy, mythology.\n"
        "- Real images that may be seen as respectful or light-hearted parodies, satire,"
        " caricatures"
    ),
    Failure.BANNED_PROMPT: (
        "The word `{word}` is banned. Circumventing this filter to violate our rules may "
        "result in your access being revoked."
    ),
    Failure.ACTION_NEEDED: "Please verify you're human to continue using Midjourney.",
}


class Kind(enum.StrEnum):
    IMAGINE = "imagine"
    REROLL = "reroll"
    VARIATION = "variation"
    ZOOM = "zoom"
    PAN = "pan"
    UPSCALE = "upscale"
    DESCRIBE = "describe"


@define
class Job:
    """One interaction the bot answers, and what it posted for it."""

    kind: Kind
    prompt: str
    """As Midjourney shows it between ``**``: image URLs shortened, ``<#id#>`` kept."""
    wording: str
    """What stands between ``" - "`` and the mention: ``""``, ``"Variations by "``..."""
    nonce: str | None
    interaction: Payload
    channel_id: str | None = None
    """Where the interaction was made, so where the job's messages go."""
    index: int | None = None
    parent_id: str | None = None
    job_id: str = field(factory=lambda: str(uuid.uuid4()))
    """Midjourney's job id: in the preview names, and the msg hash of the result."""
    filename: str | None = None
    failure: Failure | None = None
    progress_id: str | None = None
    message_id: str | None = None
    msg_hash: str | None = None
    done: bool = False

    @property
    def trigger_id(self) -> str | None:
        found = _TRIGGER.search(self.prompt)
        return found.group(1) if found else None


class Channel(Protocol):
    """What the bot needs of Discord (:class:`tests.fakes.discord.FakeDiscord`)."""

    def post_message(self, author: Payload, **fields: Any) -> Payload: ...
    def edit_message(self, message_id: str, **changes: Any) -> Payload: ...
    def delete_message(self, message_id: str) -> None: ...
    def get_message(self, message_id: str) -> Payload | None: ...
    def attachment(
        self, filename: str, *, content_type: str = ..., ephemeral: bool = ...
    ) -> Payload: ...
    def user(self) -> Payload: ...


class MidjourneyBot:
    """Answers interactions with Midjourney's messages once :meth:`enable` is called."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.enabled = False
        self.steps = 2
        self.delay_s = 0.002
        self.mode = "fast"
        self.footer = ""
        """Appended to result contents, e.g. :data:`EXPLORE_LINE`."""
        self.ephemeral_notices = False
        """Error and queue embeds go only to the user, as Discord's ephemeral replies do:
        never into the channel, so a bot account never sees them (kept in ``ephemeral``)."""
        self.ephemeral: list[Payload] = []
        self.jobs: list[Job] = []
        self.posted: list[Payload] = []
        """Every message the bot created, as created."""
        self.actions: list[tuple[str, str]] = []
        """``("create" | "update" | "delete", message id)`` in the order they happened."""
        self.errors: list[BaseException] = []
        self.waiting = 0
        """Jobs held by :meth:`pause_before_final` right now."""
        self._failures: deque[Failure] = deque()
        self._open = asyncio.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- knobs ---------------------------------------------------------------------------

    def enable(self, *, steps: int = 2, delay_s: float = 0.002, mode: str = "fast") -> None:
        """Answer interactions: ``steps`` progress edits, ``delay_s`` between messages."""
        self.steps, self.delay_s, self.mode = steps, delay_s, mode
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def fail_next(self, failure: Failure, count: int = 1) -> None:
        """The next ``count`` jobs go wrong this way (queued after earlier requests)."""
        with self._lock:
            self._failures.extend([failure] * count)

    def pause_before_final(self) -> None:
        """Hold every job just before its result message until :meth:`release`."""
        on_loop(self._loop, self._open.clear)

    def release(self) -> None:
        on_loop(self._loop, self._open.set)

    def hashes(self, trigger_id: str) -> list[str]:
        """The msg hash of each finished job of this trigger id, in job order."""
        return [j.msg_hash for j in self.jobs if j.trigger_id == trigger_id and j.msg_hash]

    @property
    def running(self) -> int:
        return sum(1 for job in self.jobs if not job.done)

    # -- the interaction side --------------------------------------------------------------

    def on_interaction(self, body: Payload) -> tuple[int, Payload] | None:
        """Start a job for an accepted interaction; an error to answer with, if any."""
        if not self.enabled:
            return None
        self._loop = asyncio.get_running_loop()
        data = body.get("data") or {}
        meta: Payload = {
            "id": snowflake(),
            "type": body.get("type"),
            "user": self.channel.user(),
            "authorizing_integration_owners": {"0": str(body.get("guild_id"))},
        }
        if body.get("type") == 2:
            job = self._command_job(data, meta, body.get("nonce"))
        elif body.get("type") == 3:
            parent = self.channel.get_message(str(body.get("message_id")))
            if parent is None:
                return 404, {"message": "Unknown Message", "code": 10008}
            meta["interacted_message_id"] = parent["id"]
            job = _button_job(str(data.get("custom_id", "")), parent, meta, body.get("nonce"))
        else:
            job = None
        if job is None:
            return None
        channel = body.get("channel_id")
        job.channel_id = None if channel is None else str(channel)
        with self._lock:
            job.failure = self._failures.popleft() if self._failures else None
        self.jobs.append(job)
        task = self._loop.create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return None

    def _command_job(self, data: Payload, meta: Payload, nonce: str | None) -> Job | None:
        name = data.get("name")
        meta |= {"name": name, "command_type": 1}
        if name == "imagine":
            prompt = _URL.sub(_short_link, str(data["options"][0]["value"]))
            return Job(Kind.IMAGINE, prompt, "", nonce, meta)
        if name == "describe":
            filename = str(data["attachments"][0]["filename"])
            return Job(Kind.DESCRIBE, "", "", nonce, meta, filename=filename)
        return None

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.errors.append(error)

    # -- the job script --------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        try:
            await self._play(job)
        finally:
            job.done = True

    async def _play(self, job: Job) -> None:
        await self._step()
        if job.failure in _EMBED_FAILURES:
            self._notice(job, **_verify(job))
            return
        if job.failure is Failure.JOB_QUEUED:
            self._notice(job)
            job.nonce = None  # the job's own messages come later, unlinked to the request
            await self._step()
        if job.kind is Kind.DESCRIBE:
            await self._describe(job)
            return
        if job.kind is Kind.UPSCALE:  # upscales post their result with no progress
            await self._gate()
            if job.failure is not Failure.NO_FINAL:
                self._final(job)
            return
        start = self._post(job, **self._answer(job), **self._text(job, "(Waiting to start)"))
        job.progress_id = start["id"]
        if job.failure is Failure.DELETED:
            await self._step()
            self._delete(start["id"])
            return
        for step in range(1, self.steps + 1):
            await self._step()
            percent = round(100 * step / (self.steps + 1))
            preview = self.channel.attachment(
                f"{job.job_id}_grid_0.webp", content_type="image/webp"
            )
            tail = f"({percent}%) ({self.mode})"
            self._edit(start["id"], **self._text(job, tail), attachments=[preview])
        if job.failure is Failure.STOPPED:
            await self._step()
            self._edit(start["id"], **self._text(job, "(Stopped)"), attachments=[])
            return
        await self._gate()
        if job.failure is Failure.NO_FINAL:
            return
        await self._step()
        self._final(job)
        await self._step()
        self._delete(start["id"])

    async def _describe(self, job: Job) -> None:
        thinking = self._post(job, **self._answer(job), flags=LOADING)
        job.progress_id = thinking["id"]
        await self._gate()
        if job.failure is Failure.NO_FINAL:
            return
        await self._step()
        image = self.channel.attachment(str(job.filename), ephemeral=True)
        lines = "\n\n".join(
            f"{key} {text}" for key, text in zip(KEYCAPS, DESCRIBE_PROMPTS, strict=True)
        )
        embed = {
            "type": "rich",
            "description": lines,
            "image": {k: image[k] for k in ("url", "proxy_url", "width", "height")},
        }
        picks = [_button(str(i), f"MJ::Job::PicReader::{i}") for i in range(1, 5)]
        retry = _button(None, "MJ::Picread::Retry", emoji="\U0001f504")
        rows = [_row(*picks, retry), _row(_button("Imagine all", "MJ::Job::PicReader::all"))]
        self._edit(thinking["id"], flags=0, embeds=[embed], components=rows)
        job.message_id = thinking["id"]

    def _final(self, job: Job) -> None:
        msg_hash = job.job_id
        user = self.channel.user()
        filename = f"{user['username']}_{_words(job.prompt)}_{msg_hash}.png"
        text: Payload
        if job.kind is Kind.UPSCALE:
            content = f"**{job.prompt}** - Image #{job.index} <@{user['id']}>"
            text = {"content": content, "mentions": [user]}
            buttons = _upscale_buttons(msg_hash)
        else:
            text = self._text(job, f"({self.mode})")
            buttons = _grid_buttons(msg_hash)
        text["content"] += self.footer
        linked = {"type": 0} if job.parent_id is None else self._reply_to_parent(job)
        attachment = self.channel.attachment(filename)
        message = self._post(job, **linked, **text, attachments=[attachment], components=buttons)
        job.message_id, job.msg_hash = message["id"], msg_hash

    async def _step(self) -> None:
        await asyncio.sleep(self.delay_s)

    async def _gate(self) -> None:
        if self._open.is_set():
            return
        with self._lock:
            self.waiting += 1
        try:
            await self._open.wait()
        finally:
            with self._lock:
                self.waiting -= 1

    # -- message shapes --------------------------------------------------------------------

    def _text(self, job: Job, tail: str) -> Payload:
        user = self.channel.user()
        content = f"**{job.prompt}** - {job.wording}<@{user['id']}> {tail}"
        return {"content": content, "mentions": [user]}

    def _answer(self, job: Job) -> Payload:
        """The fields of a job's first message: the answer to its interaction."""
        if job.parent_id is not None:
            return {**self._reply_to_parent(job), "nonce": job.nonce}
        legacy = {k: job.interaction[k] for k in ("id", "type", "name", "user")}
        return {
            "type": 20,
            "nonce": job.nonce,
            "webhook_id": MIDJOURNEY_ID,
            "application_id": MIDJOURNEY_ID,
            "interaction": legacy,
            "interaction_metadata": job.interaction,
        }

    def _reply_to_parent(self, job: Job) -> Payload:
        parent = self.channel.get_message(str(job.parent_id))
        reference = {"type": 0, "message_id": job.parent_id}
        if parent is not None:
            reference |= {"channel_id": parent["channel_id"], "guild_id": parent["guild_id"]}
        return {
            "type": 19,
            "application_id": MIDJOURNEY_ID,
            "interaction_metadata": job.interaction,
            "message_reference": reference,
            "referenced_message": parent,
        }

    def _failure_embed(self, job: Job) -> Payload:
        failure = job.failure
        assert failure is not None
        words = job.prompt.split()
        text = _EMBED_FAILURES.get(failure)
        if failure is Failure.JOB_QUEUED:
            text = "You have too many jobs running. This one starts as soon as one finishes."
        return {
            "type": "rich",
            "title": failure.value,
            "description": str(text).format(word=words[-1] if words else ""),
            "color": WARNING_COLOR if failure is Failure.JOB_QUEUED else ERROR_COLOR,
            "footer": {"text": f"/imagine {job.prompt}"},
        }

    def _notice(self, job: Job, **extra: Any) -> None:
        """An embed answering the interaction: an error, or the queued warning."""
        fields = {**self._answer(job), "embeds": [self._failure_embed(job)], **extra}
        if self.ephemeral_notices:
            self.ephemeral.append(fields | {"flags": EPHEMERAL})
        else:
            self._post(job, **fields)

    def _post(self, job: Job, **fields: Any) -> Payload:
        """A message in the channel the job's interaction was made in."""
        if job.channel_id is not None:
            fields["channel_id"] = job.channel_id
        message = self.channel.post_message(MIDJOURNEY, **fields)
        self.posted.append(message)
        self.actions.append(("create", message["id"]))
        return message

    def _edit(self, message_id: str, **changes: Any) -> None:
        self.channel.edit_message(message_id, **changes)
        self.actions.append(("update", message_id))

    def _delete(self, message_id: str) -> None:
        self.channel.delete_message(message_id)
        self.actions.append(("delete", message_id))


def _button_job(custom_id: str, parent: Payload, meta: Payload, nonce: str | None) -> Job | None:
    """The job a Midjourney button starts, read from its custom id; None for other buttons."""
    shown = _SHOWN_PROMPT.match(parent.get("content", ""))
    prompt = shown.group(1) if shown else ""
    meta |= {"custom_id": custom_id}
    parent_id = str(parent["id"])
    if found := re.fullmatch(rf"MJ::JOB::upsample::(\d)::{_HASH}", custom_id):
        index = int(found.group(1))
        return Job(Kind.UPSCALE, prompt, "", nonce, meta, index=index, parent_id=parent_id)
    wording = {
        rf"MJ::JOB::variation::\d::{_HASH}(::SOLO)?": (Kind.VARIATION, "Variations by "),
        rf"MJ::JOB::low_variation::1::{_HASH}::SOLO": (Kind.VARIATION, "Variations (Subtle) by "),
        rf"MJ::JOB::high_variation::1::{_HASH}::SOLO": (Kind.VARIATION, "Variations (Strong) by "),
        rf"MJ::Outpaint::\d+::1::{_HASH}::SOLO": (Kind.ZOOM, "Zoom Out by "),
        rf"MJ::JOB::reroll::0::{_HASH}::SOLO": (Kind.REROLL, ""),
    }
    for pattern, (kind, words) in wording.items():
        if re.fullmatch(pattern, custom_id):
            return Job(kind, prompt, words, nonce, meta, parent_id=parent_id)
    if found := re.fullmatch(rf"MJ::JOB::pan_(left|right|up|down)::1::{_HASH}::SOLO", custom_id):
        pan = f"Pan {found.group(1).title()} by "
        return Job(Kind.PAN, prompt, pan, nonce, meta, parent_id=parent_id)
    return None


def _short_link(found: re.Match[str]) -> str:
    """Midjourney shows an image prompt's URL as its own short link."""
    return f"<https://s.mj.run/{secrets.token_urlsafe(8)}>"


def _words(prompt: str) -> str:
    """The prompt part of a result's file name: ``<#12#>a red fox`` → ``12a_red_fox``."""
    text = re.sub(r"<https?://[^>]*>", " ", prompt)
    words = ("".join(c for c in w if c.isascii() and c.isalnum()) for w in text.split())
    return "_".join(w for w in words if w)[:64]


def _verify(job: Job) -> Payload:
    if job.failure is not Failure.ACTION_NEEDED:
        return {}
    verify = _button("Verify", f"MJ::iframe::{secrets.token_urlsafe(24)}", style=1)
    return {"components": [_row(verify)]}


def _button(
    label: str | None, custom_id: str, *, emoji: str | None = None, style: int = 2
) -> Payload:
    button: Payload = {"type": 2, "style": style, "custom_id": custom_id}
    if label is not None:
        button["label"] = label
    if emoji is not None:
        button["emoji"] = {"name": emoji}
    return button


def _row(*buttons: Payload) -> Payload:
    return {"type": 1, "components": list(buttons)}


def _grid_buttons(msg_hash: str) -> list[Payload]:
    """U1-U4 and reroll, then V1-V4: what a grid (imagine, variation, zoom, pan) carries."""
    upscales = [_button(f"U{i}", f"MJ::JOB::upsample::{i}::{msg_hash}") for i in range(1, 5)]
    reroll = _button(None, f"MJ::JOB::reroll::0::{msg_hash}::SOLO", emoji="\U0001f504")
    variations = [_button(f"V{i}", f"MJ::JOB::variation::{i}::{msg_hash}") for i in range(1, 5)]
    return [_row(*upscales, reroll), _row(*variations)]


def _upscale_buttons(msg_hash: str) -> list[Payload]:
    """What an upscaled image carries: upscale again, vary, zoom out, pan, favourite."""
    solo = f"::1::{msg_hash}::SOLO"
    arrows = {
        "left": "\u2b05\ufe0f",
        "right": "\u27a1\ufe0f",
        "up": "\u2b06\ufe0f",
        "down": "\u2b07\ufe0f",
    }
    web = {
        "type": 2,
        "style": 5,
        "label": "Web",
        "url": f"https://www.midjourney.com/jobs/{msg_hash}",
    }
    return [
        _row(
            _button("Upscale (Subtle)", f"MJ::JOB::upsample_v6_2x_subtle{solo}"),
            _button("Upscale (Creative)", f"MJ::JOB::upsample_v6_2x_creative{solo}"),
        ),
        _row(
            _button("Vary (Subtle)", f"MJ::JOB::low_variation{solo}", emoji="\U0001fa84"),
            _button("Vary (Strong)", f"MJ::JOB::high_variation{solo}", emoji="\U0001fa84"),
            _button("Vary (Region)", f"MJ::Inpaint{solo}", emoji="\U0001f58c\ufe0f"),
        ),
        _row(
            _button("Zoom Out 2x", f"MJ::Outpaint::50{solo}", emoji="\U0001f50d"),
            _button("Zoom Out 1.5x", f"MJ::Outpaint::75{solo}", emoji="\U0001f50d"),
            _button("Custom Zoom", f"MJ::CustomZoom::1::{msg_hash}"),
        ),
        _row(*(_button(None, f"MJ::JOB::pan_{d}{solo}", emoji=e) for d, e in arrows.items())),
        _row(_button(None, f"MJ::BOOKMARK::{msg_hash}", emoji="\u2764\ufe0f"), web),
    ]

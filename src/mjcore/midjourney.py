"""What the core knows of Midjourney: its actions, trigger ids, and the listener's events."""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Sequence

from attrs import frozen

from .errors import InvalidInput
from .limits import Text, Whole
from .tasks import Task

TRIGGER_DIGITS = 16
_PROGRESS = re.compile(r"\((\d{1,3})%\)")
_IMAGE_INDEX = re.compile(r"[Ii]mage #(\d)")
_TRIGGER = re.compile(r"<#([0-9A-Za-z_]{1,64})#>")
_MARKER = re.compile(r"<#.*?#>", re.DOTALL)
_UUID_AT_END = re.compile(
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\.\w+)?$", re.IGNORECASE
)
_DESCRIBE_LINE = re.compile(r"^\s*(?:\d\ufe0f\u20e3|\d[.)])\s*(.+?)\s*$")


# What callers may hand in (the edges attach these rules to their request classes).
PROMPT = Text("prompt", 6000, nonblank=True)
PICURL = Text("picurl", 2048, pattern=r"https?://[^\s<>]+", hint="one http(s) URL")
TRIGGER_ID = Text("trigger_id", 64, 1, pattern=r"[0-9A-Za-z_-]+", hint="a trigger or task id")
MSG_HASH = Text("msg_hash", 64, 8, pattern=r"[0-9a-fA-F-]+", hint="a message hash (a UUID)")
UPLOAD_FILENAME = Text(
    "upload_filename", 256, 1, pattern=r"[0-9A-Za-z_-]+/[0-9A-Za-z_.-]+", hint="one from /upload"
)
INDEX = Whole("index", 1, 4)
DIRECTIONS = ("left", "right", "up", "down")
DIRECTION = Text("direction", 5, choices=DIRECTIONS)
ZOOMOUT = Whole("zoomout", 50, 75, choices=(50, 75))
# what a listener may report (generous: Midjourney's text, URLs with signed query strings)
EVENT_TYPE = Text("type", 32)
EVENT_TEXT = Text("text", 8000)
EVENT_URL = Text("url", 4096)


COSTLY_PARAMETERS = {"repeat": ("repeat", "r"), "turbo": ("turbo",)}
"""Midjourney parameters that multiply what a job costs the operator (``--repeat 40`` is
forty jobs for one price), by the name a setting allows them under."""
_PARAMETER = re.compile(r"(?:^|\s)(?:--|\u2014|\u2013)([A-Za-z]+)")  # iOS types -- as a dash


def costly_parameters(prompt: str) -> set[str]:
    """The names of :data:`COSTLY_PARAMETERS` the prompt uses."""
    used = {found.group(1).lower() for found in _PARAMETER.finditer(prompt)}
    return {name for name, spellings in COSTLY_PARAMETERS.items() if used & set(spellings)}


def check_user_text(text: str, what: str) -> str:
    """Our trigger marker travels in the prompt: a caller's own ``<#...#>`` could send the
    results of this job to another task, so user text may not contain one."""
    if _MARKER.search(text):
        raise InvalidInput(f"{what} must not contain <#...#> (it is the job's own marker)")
    return text


class MjAction(enum.StrEnum):
    """The consuming Midjourney endpoints; the value is also the price-table key."""

    IMAGINE = "imagine"
    UPSCALE = "upscale"
    VARIATION = "variation"
    RESET = "reset"
    DESCRIBE = "describe"
    SOLO_VARIATION = "solo_variation"
    SOLO_LOW_VARIATION = "solo_low_variation"
    SOLO_HIGH_VARIATION = "solo_high_variation"
    EXPAND = "expand"
    ZOOMOUT = "zoomout"

    @property
    def trigger_type(self) -> str:
        """The name yokonsan clients know this action by."""
        return "generate" if self is MjAction.IMAGINE else self.value

    @property
    def is_button(self) -> bool:
        """Follow-up actions press a button on a finished message."""
        return self not in (MjAction.IMAGINE, MjAction.DESCRIBE)


BUTTON_IDS = {
    MjAction.UPSCALE: "MJ::JOB::upsample::{index}::{hash}",
    MjAction.VARIATION: "MJ::JOB::variation::{index}::{hash}",
    MjAction.SOLO_VARIATION: "MJ::JOB::variation::1::{hash}::SOLO",
    MjAction.SOLO_LOW_VARIATION: "MJ::JOB::low_variation::1::{hash}::SOLO",
    MjAction.SOLO_HIGH_VARIATION: "MJ::JOB::high_variation::1::{hash}::SOLO",
    MjAction.EXPAND: "MJ::JOB::pan_{direction}::1::{hash}::SOLO",
    MjAction.ZOOMOUT: "MJ::Outpaint::{zoomout}::1::{hash}::SOLO",
    MjAction.RESET: "MJ::JOB::reroll::0::{hash}::SOLO",
}
"""Midjourney's button ids, by the action that presses them."""


@frozen
class Button:
    """A button Midjourney puts under a finished job's message."""

    custom_id: str
    label: str = ""
    emoji: str = ""


@frozen
class Press:
    """What pressing a button asks for: an action on the grid whose hash it names."""

    action: MjAction
    msg_hash: str
    index: int = 1
    direction: str | None = None
    zoomout: int | None = None


_GRID_BUTTONS = (
    *((MjAction.UPSCALE, f"U{i}", "", i) for i in range(1, 5)),
    (MjAction.RESET, "", "\U0001f504", 1),
    *((MjAction.VARIATION, f"V{i}", "", i) for i in range(1, 5)),
)
_IMAGE_BUTTONS = (
    (MjAction.SOLO_HIGH_VARIATION, "Vary (Strong)", "\U0001fa84", 1),
    (MjAction.SOLO_LOW_VARIATION, "Vary (Subtle)", "\U0001fa84", 1),
    (MjAction.ZOOMOUT, "Zoom Out 2x", "\U0001f50d", 50),
    (MjAction.ZOOMOUT, "Zoom Out 1.5x", "\U0001f50d", 75),
    (MjAction.EXPAND, "", "\u2b05\ufe0f", "left"),
    (MjAction.EXPAND, "", "\u27a1\ufe0f", "right"),
    (MjAction.EXPAND, "", "\u2b06\ufe0f", "up"),
    (MjAction.EXPAND, "", "\u2b07\ufe0f", "down"),
)


def buttons(task: Task) -> list[Button]:
    """The buttons under a finished Midjourney job's message, as Midjourney shows them (a
    grid: U1-U4, reroll, V1-V4; an upscaled image: vary, zoom out, pan); none before it
    has succeeded, and none on a describe."""
    if task.msg_hash is None or task.action == MjAction.DESCRIBE:
        return []
    shown = _IMAGE_BUTTONS if task.action == MjAction.UPSCALE else _GRID_BUTTONS
    found = []
    for action, label, emoji, value in shown:
        fields = {"index": value, "hash": task.msg_hash, "direction": value, "zoomout": value}
        found.append(Button(BUTTON_IDS[action].format(**fields), label, emoji))
    return found


def pressed(task: Task) -> str | None:
    """The button id a follow-up task presses on its parent's message (None for a job
    that is not a button, or whose parent's hash is unknown)."""
    template = BUTTON_IDS.get(MjAction(task.action))
    p = task.params
    if template is None or not p.get("msg_hash"):
        return None
    return template.format(
        index=p.get("index"),
        hash=p["msg_hash"],
        direction=p.get("direction"),
        zoomout=p.get("zoomout"),
    )


def parse_button(custom_id: str) -> Press | None:
    """The action a Midjourney button id presses (the reverse of :data:`BUTTON_IDS`);
    None for a button we cannot press."""
    parts = custom_id.split("::")
    for action, template in BUTTON_IDS.items():
        pattern = template.split("::")
        if len(pattern) != len(parts):
            continue
        found: dict[str, str] = {}
        for want, got in zip(pattern, parts, strict=True):
            field_ = re.fullmatch(r"(\w*)\{(\w+)\}", want)
            if field_ is not None and got.startswith(field_.group(1)):
                found[field_.group(2)] = got[len(field_.group(1)) :]
            elif want != got:
                break
        else:
            return _press(action, found)
    return None


def _press(action: MjAction, found: dict[str, str]) -> Press | None:
    if not MSG_HASH.allows(found.get("hash", "")):
        return None
    index = found.get("index", "1")
    direction = found.get("direction")
    zoomout = found.get("zoomout")
    if not (index.isdigit() and INDEX.low <= int(index) <= INDEX.high):
        return None
    if direction is not None and direction not in DIRECTIONS:
        return None
    if zoomout is not None and zoomout not in ("50", "75"):  # ZOOMOUT's choices
        return None
    return Press(
        action,
        found["hash"],
        int(index),
        direction,
        None if zoomout is None else int(zoomout),
    )


_VARIATIONS = (
    MjAction.VARIATION,
    MjAction.SOLO_VARIATION,
    MjAction.SOLO_LOW_VARIATION,
    MjAction.SOLO_HIGH_VARIATION,
)


def new_trigger_id() -> str:
    """A decimal trigger id (16 digits, never a leading zero), as the listener expects."""
    low = 10 ** (TRIGGER_DIGITS - 1)
    return str(low + secrets.randbelow(9 * low))


def discord_prompt(prompt: str, picurl: str | None, trigger_id: str) -> str:
    """The text sent to /imagine: image URL first, then ``<#id#>``, then the prompt."""
    if not picurl and prompt.startswith(("http://", "https://")):
        picurl, _, prompt = prompt.partition(" ")
    return f"{picurl + ' ' if picurl else ''}<#{trigger_id}#>{prompt}"


class EventType(enum.StrEnum):
    """What a Midjourney message says about a job (yokonsan's six, and ours)."""

    START = "start"  # "(Waiting to start)"
    GENERATING = "generating"  # "(31%)", or any later edit
    END = "end"  # the result, with its image
    ERROR = "error"  # "(Stopped)", an error embed, "Action needed"
    BANNED = "banned"  # Midjourney refused the prompt
    TEXT = "text"  # a /describe answer
    QUEUED = "queued"  # "Job queued": Midjourney will start it later
    FILTERED = "filtered"  # "Request cancelled due to output filters"
    DELETED = "deleted"  # the job's message vanished before a result (moderation)


@frozen
class Attachment:
    url: str
    filename: str


@frozen
class Embed:
    title: str = ""
    description: str = ""
    footer: str = ""
    image_url: str | None = None

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.description}\n{self.footer}"


@frozen
class ListenerEvent:
    """One delivery of the yokonsan listener bot, already checked for shape."""

    type: EventType
    message_id: str
    content: str
    trigger_id: str | None
    attachments: tuple[Attachment, ...] = ()
    embeds: tuple[Embed, ...] = ()
    reference_id: str | None = None  # the message this one replies to

    @property
    def trigger(self) -> str | None:
        """The trigger id: as sent, else our ``<#id#>`` marker in the prompt (or in an
        embed, which quotes it), else (describe) the uploaded image's name."""
        if self.trigger_id:
            return self.trigger_id
        prompt = split_message(self.content)[0]
        for text in (prompt or self.content, *(e.text for e in self.embeds)):
            found = _TRIGGER.search(text)
            if found:
                return found.group(1)
        for embed in self.embeds:
            url = embed.image_url or ""
            stem = url.split("?", 1)[0].rsplit("/", 1)[-1].split(".", 1)[0]
            if stem.isdigit():
                return stem
        return None

    @property
    def reason(self) -> str:
        """Midjourney's own words on what went wrong (embed title and text, or wording)."""
        for embed in self.embeds:
            if embed.title or embed.description:
                return f"{embed.title}: {embed.description}".strip(": ")[:300]
        return wording(self.content).strip()[:300]


def split_message(content: str) -> tuple[str, str]:
    """A Midjourney message as (the bold prompt, Midjourney's own wording around it).

    Midjourney writes ``**<prompt>** - <@user> (31%) (fast)``, ``**<prompt>** - Image #1
    <@user>``, ``Upscaling image #2 with **<prompt>**``. The prompt runs from the first
    ``**`` to the last one (a prompt may contain ``**`` itself), so whatever a user typed
    ("Image #1 of a series", "(50%)", "Zoom Out of a city") stays inside it and is never
    read as Midjourney's wording.
    """
    line, newline, rest = content.partition("\n")  # prompts are one line; notes may follow
    start = line.find("**")
    end = line.rfind("**")
    if start == end:  # no bold prompt: the message is all wording
        return "", content
    return line[start + 2 : end], f"{line[:start]} {line[end + 2 :]}{newline}{rest}"


def wording(content: str) -> str:
    """Midjourney's words in a message, without the prompt."""
    return split_message(content)[1]


def progress_of(content: str) -> int | None:
    """``(31%)`` in Midjourney's wording → 31."""
    found = _PROGRESS.search(wording(content))
    return min(int(found.group(1)), 100) if found else None


def image_index(content: str) -> int | None:
    """``Image #2`` in Midjourney's wording (an upscale's result) → 2."""
    found = _IMAGE_INDEX.search(wording(content))
    return int(found.group(1)) if found else None


def hash_of(filename: str) -> str | None:
    """The message hash: the UUID at the end of a result's file name."""
    found = _UUID_AT_END.search(filename.split("?", 1)[0])
    return found.group(1).lower() if found else None


def describe_prompts(descriptions: Sequence[str]) -> list[str]:
    """The (usually four) prompts of a /describe answer, one per numbered line."""
    prompts = []
    for description in descriptions:
        for line in description.splitlines():
            found = _DESCRIBE_LINE.match(line)
            if found:
                prompts.append(found.group(1))
    return prompts


def _family(content: str) -> tuple[MjAction, ...] | None:
    """Which actions a message can belong to, read from Midjourney's wording only."""
    content = wording(content)
    if "Image #" in content or "image #" in content or "Upscal" in content:
        return (MjAction.UPSCALE,)
    if "Variations (Strong)" in content:
        return (MjAction.SOLO_HIGH_VARIATION, *_VARIATIONS)
    if "Variations (Subtle)" in content:
        return (MjAction.SOLO_LOW_VARIATION, *_VARIATIONS)
    if "ariations" in content:
        return _VARIATIONS
    if "Zoom Out" in content or "Zooming out" in content:
        return (MjAction.ZOOMOUT,)
    if "Pan " in content or "Panning" in content:
        return (MjAction.EXPAND,)
    return None


def route(candidates: Sequence[Task], event: ListenerEvent) -> Task | None:
    """Which of the unfinished tasks sharing a trigger id this event is about.

    A follow-up (U1, V2, zoom...) shares its grid's trigger id, so several tasks may wait
    on one id. In order: the task that already owns this progress message; else the
    oldest task of the action the wording names (for an upscale, the one whose index
    matches ``Image #n``); a message with plain wording (a grid) goes to the oldest
    imagine or reroll, else the oldest task not yet given a progress message.
    """
    ordered = sorted(candidates, key=lambda t: t.created_at)
    for task in ordered:
        if task.result.get("progress_msg_id") == event.message_id:
            return task
    named = _family(event.content)
    index = image_index(event.content)
    for action in named or (MjAction.IMAGINE, MjAction.RESET):
        for task in ordered:
            if task.action != action:
                continue
            if action is MjAction.UPSCALE and index and task.params.get("index") != index:
                continue
            return task
    if named is not None:
        return None  # e.g. an "Image #2" nobody here asked for
    unclaimed = [t for t in ordered if "progress_msg_id" not in t.result]
    return next(iter(unclaimed or ordered), None)


# Embed titles Midjourney uses, lower-cased, by what they mean for the job.
_EMBED_EVENTS = (
    ("banned prompt", EventType.BANNED),
    ("output filter", EventType.FILTERED),
    ("job queued", EventType.QUEUED),
)
_EMBED_ERRORS = (
    "invalid",  # Invalid parameter / prompt / link
    "error",
    "denied",
    "action needed",  # the CAPTCHA / appeal prompt
    "action required",
    "queue full",
    "pending mod",
    "blocked",
    "subscription",
    "credits exhausted",
    "plan cancelled",
    "sorry",  # Sorry! Could not complete the job
    "duplicate images",
)
ERROR_COLOR = 0xFF0000


def classify(
    content: str,
    embeds: Sequence[Embed] = (),
    attachments: Sequence[Attachment] = (),
    *,
    edited: bool = False,
    color: int | None = None,
) -> EventType | None:
    """What a message of the Midjourney bot says, read from its wording and embeds only.

    ``edited`` is an update of an earlier message (progress edits). None: nothing a job
    needs to know (a notice we do not act on).
    """
    for embed in embeds:
        title = embed.title.lower()
        if embed.image_url and describe_prompts([embed.description]):
            return EventType.TEXT
        for words, kind in _EMBED_EVENTS:
            if words in title:
                return kind
        if color == ERROR_COLOR or any(words in title for words in _EMBED_ERRORS):
            return EventType.ERROR
    said = wording(content)
    if "(Stopped)" in said:
        return EventType.ERROR
    if "(Waiting to start)" in said:
        return EventType.START
    if progress_of(content) is not None:
        return EventType.GENERATING
    if attachments and not edited:
        return EventType.END
    return EventType.GENERATING if edited and content else None

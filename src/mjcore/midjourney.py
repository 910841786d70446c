"""What the core knows of Midjourney: its actions, trigger ids, and the listener's events."""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Sequence

from attrs import frozen

from .tasks import Task

TRIGGER_DIGITS = 16
_PROGRESS = re.compile(r"\((\d{1,3})%\)")
_IMAGE_INDEX = re.compile(r"[Ii]mage #(\d)")
_TRIGGER = re.compile(r"<#(\w+?)#>")
_UUID_AT_END = re.compile(
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\.\w+)?$", re.IGNORECASE
)
_DESCRIBE_LINE = re.compile(r"^\s*(?:\d\ufe0f\u20e3|\d[.)])\s*(.+?)\s*$")


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
    START = "start"
    GENERATING = "generating"
    END = "end"
    ERROR = "error"
    BANNED = "banned"
    TEXT = "text"


@frozen
class Attachment:
    url: str
    filename: str


@frozen
class ListenerEvent:
    """One delivery of the yokonsan listener bot, already checked for shape."""

    type: EventType
    message_id: str
    content: str
    trigger_id: str | None
    attachments: tuple[Attachment, ...] = ()
    embed_descriptions: tuple[str, ...] = ()
    embed_image_urls: tuple[str, ...] = ()

    @property
    def trigger(self) -> str | None:
        """The trigger id: as sent, else from ``<#id#>``, else (describe) the image's name."""
        if self.trigger_id:
            return self.trigger_id
        found = _TRIGGER.search(self.content)
        if found:
            return found.group(1)
        for url in self.embed_image_urls:
            stem = url.split("?", 1)[0].rsplit("/", 1)[-1].split(".", 1)[0]
            if stem.isdigit():
                return stem
        return None


def progress_of(content: str) -> int | None:
    """``(31%)`` in the message → 31."""
    found = _PROGRESS.search(content)
    return min(int(found.group(1)), 100) if found else None


def image_index(content: str) -> int | None:
    """``Image #2`` (an upscale's result) → 2."""
    found = _IMAGE_INDEX.search(content)
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
    """Which actions a message can belong to, read from Midjourney's wording."""
    if "Image #" in content or "Upscal" in content:
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

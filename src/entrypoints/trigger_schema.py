"""The Midjourney surface's bodies (yokonsan-compatible) and how tasks are shown."""

from __future__ import annotations

import re
from typing import Any, NewType

import cattrs
from attrs import define, field

from mjcore.midjourney import Attachment, EventType, ListenerEvent, MjAction
from mjcore.services.midjourney import ParentRef
from mjcore.tasks import Provider, Task

from .http import BadRequest, lenient, make_converter

MAX_PROMPT = 6000
Snowflake = NewType("Snowflake", str)
_SNOWFLAKE = re.compile(r"\d{1,20}")
_TRIGGER = re.compile(r"\w{1,64}")
_HASH = re.compile(r"[0-9a-fA-F-]{8,64}")
DIRECTIONS = ("left", "right", "up", "down")
ZOOMOUTS = (50, 75)


def _snowflake(value: Any, _: type) -> Snowflake:
    """Discord ids arrive as numbers (the listener) or strings; they are kept as strings."""
    if type(value) is int or (isinstance(value, str) and _SNOWFLAKE.fullmatch(value)):
        return Snowflake(str(value))
    raise ValueError("expected a Discord id (digits, as a number or a string)")


@define
class ImagineIn:
    prompt: str
    picurl: str | None = None


@define
class ButtonIn:
    """``{msg_id, msg_hash, trigger_id, index}`` (yokonsan) or ``{task_id, index}``."""

    task_id: str | None = None
    msg_id: Snowflake | None = None
    msg_hash: str | None = None
    trigger_id: str | None = None
    index: int | None = None
    direction: str | None = None
    zoomout: int | None = None


@define
class DescribeIn:
    upload_filename: str
    trigger_id: str


@define
class MessageIn:
    upload_filename: str


@define
class ReleaseIn:
    trigger_id: str


@define
class AttachmentIn:
    url: str
    filename: str = ""


@define
class EmbedImageIn:
    url: str


@define
class EmbedIn:
    description: str = ""
    image: EmbedImageIn | None = None


@define
class EventIn:
    """What the listener bot posts; it carries more keys than we read, so extra is fine."""

    type: str
    id: Snowflake
    content: str = ""
    attachments: list[AttachmentIn] = field(factory=list)
    embeds: list[EmbedIn] = field(factory=list)
    trigger_id: str | None = None


def make_trigger_converter() -> cattrs.Converter:
    converter = make_converter()
    converter.register_structure_hook(Snowflake, _snowflake)
    for cls in (EmbedImageIn, EmbedIn, AttachmentIn, EventIn):  # inner first: hooks bind early
        lenient(converter, cls)
    return converter


def check_imagine(body: ImagineIn) -> ImagineIn:
    if not body.prompt.strip():
        raise BadRequest("prompt must not be empty")
    if len(body.prompt) > MAX_PROMPT:
        raise BadRequest(f"prompt must be at most {MAX_PROMPT} characters")
    if body.picurl is not None and not body.picurl.startswith(("http://", "https://")):
        raise BadRequest("picurl must be an http(s) URL")
    return body


def parent_of(body: ButtonIn, action: MjAction) -> tuple[ParentRef, int]:
    """Which grid a button body names, and the index it presses; BadRequest if unclear."""
    triple = (body.msg_id, body.msg_hash, body.trigger_id)
    if body.task_id is not None:
        if any(v is not None for v in triple):
            raise BadRequest("give either task_id or msg_id, msg_hash and trigger_id, not both")
        ref = ParentRef(task_id=body.task_id)
    elif all(v is not None for v in triple):
        if not _HASH.fullmatch(body.msg_hash or "") or not _TRIGGER.fullmatch(
            body.trigger_id or ""
        ):
            raise BadRequest("msg_hash or trigger_id is malformed")
        ref = ParentRef(msg_id=body.msg_id, msg_hash=body.msg_hash, trigger_id=body.trigger_id)
    else:
        raise BadRequest("give task_id, or msg_id, msg_hash and trigger_id")
    needs_index = action in (MjAction.UPSCALE, MjAction.VARIATION)
    if needs_index and body.index is None:
        raise BadRequest("index is required (1-4)")
    index = 1 if body.index is None else body.index
    if not 1 <= index <= 4:
        raise BadRequest("index must be from 1 to 4")
    if action is MjAction.EXPAND and body.direction not in DIRECTIONS:
        raise BadRequest(f"direction must be one of {', '.join(DIRECTIONS)}")
    if action is not MjAction.EXPAND and body.direction is not None:
        raise BadRequest("direction is only for /expand")
    if action is MjAction.ZOOMOUT and body.zoomout not in ZOOMOUTS:
        raise BadRequest("zoomout must be 50 or 75")
    if action is not MjAction.ZOOMOUT and body.zoomout is not None:
        raise BadRequest("zoomout is only for /zoomout")
    return ref, index


def to_event(body: EventIn) -> ListenerEvent | None:
    """The domain event, or None for an event type we do not act on."""
    try:
        kind = EventType(body.type)
    except ValueError:
        return None
    return ListenerEvent(
        type=kind,
        message_id=body.id,
        content=body.content,
        trigger_id=body.trigger_id or None,
        attachments=tuple(Attachment(a.url, a.filename) for a in body.attachments),
        embed_descriptions=tuple(e.description for e in body.embeds if e.description),
        embed_image_urls=tuple(e.image.url for e in body.embeds if e.image),
    )


def _when(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def trigger_type(task: Task) -> str:
    if task.provider is Provider.MIDJOURNEY:
        return MjAction(task.action).trigger_type
    return task.action


def task_view(task: Task) -> dict[str, Any]:
    """A task as both surfaces' clients see it (times in ISO 8601, UTC)."""
    view: dict[str, Any] = {
        "task_id": task.task_id,
        "provider": task.provider.value,
        "trigger_id": task.trigger_id,
        "trigger_type": trigger_type(task),
        "status": task.status.value,
        "progress": task.progress,
        "prompt": task.prompt,
        "image_url": task.image_url,
        "fail_reason": task.fail_reason,
        "msg_id": task.msg_id,
        "msg_hash": task.msg_hash,
        "parent_task_id": task.parent_task_id,
        "index": task.params.get("index"),
        "cost": task.cost,
        "refunded": task.refunded,
        "created_at": _when(task.created_at),
        "started_at": _when(task.started_at),
        "finished_at": _when(task.finished_at),
    }
    if "prompts" in task.result:
        view["prompts"] = list(task.result["prompts"])
    return view


def accepted_view(task: Task) -> dict[str, Any]:
    """The answer to a consuming trigger endpoint."""
    return {
        "code": 1,
        "message": "success",
        "trigger_id": task.trigger_id,
        "trigger_type": trigger_type(task),
        "task_id": task.task_id,
        "result": task.task_id,
        "status": task.status.value,
    }

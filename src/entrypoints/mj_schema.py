"""midjourney-proxy's ``/mj`` surface: its bodies, its task object and its submit answer.

Bodies are read as novicezk's Spring DTOs read them, and as new-api sends them (every
field of its ``MidjourneyRequest``, empty ones included): unknown keys ignored, ``""`` and
``null`` mean absent, ``"1"`` is 1. Field names are novicezk's, so they are camelCase.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from datetime import datetime
from typing import Any

from attrs import define, field

from mjcore import midjourney as mj
from mjcore.limits import Text
from mjcore.media import EXTENSIONS, sniff
from mjcore.midjourney import MjAction, buttons, pressed
from mjcore.services.jobs import STATE
from mjcore.services.midjourney import Picture
from mjcore.tasks import TASK_ID, Task, TaskStatus
from mjcore.webhooks import HOOK_URL, Hook, HookStyle

from .schema import Open, make_converter, rule

CONVERTER = make_converter(lenient=True)


class Code(enum.IntEnum):
    """novicezk's ``ReturnCode``."""

    SUCCESS = 1
    NOT_FOUND = 3
    VALIDATION_ERROR = 4
    FAILURE = 9
    EXISTED = 21
    IN_QUEUE = 22
    QUEUE_REJECTED = 23
    BANNED_PROMPT = 24


class Refused(Exception):
    """A submission novicezk answers with HTTP 200 and a code other than 1 (nothing
    charged)."""

    def __init__(self, code: Code, description: str, **properties: Any) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.properties = properties


CUSTOM_ID = Text("customId", 256, 1)
CONTENT = Text("content", 128, 1)
BOT_TYPE = Text("botType", 32)
DATA_URL = re.compile(r"data:(image/[a-z+.-]+);base64,(.*)", re.DOTALL | re.IGNORECASE)
MAX_IMAGES = 5  # novicezk's blend takes 2-5


# -- bodies ---------------------------------------------------------------------------------


@define(kw_only=True)
class MjSubmitIn(Open):
    """novicezk's ``BaseSubmitDTO`` (and new-api's ``botType``)."""

    state: str | None = rule(STATE, None)
    notifyHook: str | None = rule(HOOK_URL, None)
    botType: str | None = rule(BOT_TYPE, None)

    def hooks(self) -> tuple[Hook, ...]:
        return (Hook(self.notifyHook, HookStyle.NOVICEZK),) if self.notifyHook else ()

    def check_bot(self) -> None:
        if self.botType not in (None, "MID_JOURNEY"):
            raise Refused(Code.VALIDATION_ERROR, f"botType {self.botType} is not served here")


@define(kw_only=True)
class MjImagineIn(MjSubmitIn):
    prompt: str = rule(mj.PROMPT)
    base64Array: list[str] | None = None
    base64: str | None = None  # novicezk's older single image


@define(kw_only=True)
class MjChangeIn(MjSubmitIn):
    taskId: str = rule(TASK_ID)
    action: str
    index: int | None = None  # new-api sends 0 with REROLL


@define(kw_only=True)
class MjSimpleChangeIn(MjSubmitIn):
    content: str = rule(CONTENT)


@define(kw_only=True)
class MjActionIn(MjSubmitIn):
    taskId: str = rule(TASK_ID)
    customId: str = rule(CUSTOM_ID)
    chooseSameChannel: bool | None = None  # a follow-up always runs on its grid's account


@define(kw_only=True)
class MjDescribeIn(MjSubmitIn):
    base64: str


@define(kw_only=True)
class MjBlendIn(MjSubmitIn):
    base64Array: list[str] | None = None
    dimensions: str | None = None


@define(kw_only=True)
class MjModalIn(MjSubmitIn):
    taskId: str | None = None
    prompt: str | None = None
    maskBase64: str | None = None


@define(kw_only=True)
class MjConditionIn(Open):
    ids: list[str] | None = None


def picture(data_url: str, limit: int) -> Picture:
    """An image from a data URL (``data:image/png;base64,…``), checked to really be one."""
    found = DATA_URL.fullmatch(data_url.strip())
    if found is None:
        raise Refused(Code.VALIDATION_ERROR, "base64 must be a data URL: data:image/png;base64,…")
    try:
        data = base64.b64decode(found.group(2), validate=False)
    except (binascii.Error, ValueError):
        raise Refused(Code.VALIDATION_ERROR, "base64 is not valid base64") from None
    if len(data) > limit:
        raise Refused(Code.VALIDATION_ERROR, f"the image must be at most {limit} bytes")
    kind = sniff(data)
    if kind is None:
        raise Refused(Code.VALIDATION_ERROR, "the image must be a PNG, JPEG, WebP or GIF")
    return Picture(data, kind, EXTENSIONS[kind])


_CHANGE = {"UPSCALE": MjAction.UPSCALE, "VARIATION": MjAction.VARIATION, "REROLL": MjAction.RESET}


def change_of(action: str, index: int | None) -> tuple[MjAction, int]:
    """``/change``'s action and index as the core's (UPSCALE/VARIATION need an index)."""
    chosen = _CHANGE.get(action.upper())
    if chosen is None:
        raise Refused(Code.VALIDATION_ERROR, "action must be UPSCALE, VARIATION or REROLL")
    if chosen is MjAction.RESET:
        return chosen, 1
    if index is None or not mj.INDEX.low <= index <= mj.INDEX.high:
        raise Refused(Code.VALIDATION_ERROR, "index must be 1-4 for UPSCALE and VARIATION")
    return chosen, index


def simple_change(content: str) -> tuple[str, str, int | None]:
    """``"<taskId> U1"`` (V1-V4, U1-U4, R) as (task id, action, index)."""
    found = re.fullmatch(r"(\S+) ([UuVv])([1-4])|(\S+) ([Rr])", content.strip())
    if found is None:
        raise Refused(Code.VALIDATION_ERROR, "content must be '<taskId> U1-U4|V1-V4|R'")
    if found.group(4) is not None:
        return found.group(4), "REROLL", None
    action = "UPSCALE" if found.group(2).upper() == "U" else "VARIATION"
    return found.group(1), action, int(found.group(3))


# -- answers --------------------------------------------------------------------------------


@define
class MjSubmitOut:
    """novicezk's ``SubmitResultVO``: code 1 submitted, 22 queued, anything else refused."""

    code: int
    description: str
    result: str | None
    properties: dict[str, Any] = field(factory=dict)


@define
class MjButton:
    customId: str
    emoji: str
    label: str
    type: int
    style: int


@define
class MjProperties(Open):
    finalPrompt: str
    finalZhPrompt: str
    messageId: str | None
    messageHash: str | None
    prompts: list[str] | None  # a describe's four prompts, one by one


@define
class MjTask:
    """novicezk's task object (with midjourney-proxy-plus's ``buttons``)."""

    id: str
    action: str
    customId: str
    botType: str
    status: TaskStatus
    progress: str
    prompt: str
    promptEn: str
    description: str
    state: str | None
    submitTime: int
    startTime: int | None
    finishTime: int | None
    imageUrl: str | None
    failReason: str | None
    buttons: list[MjButton]
    maskBase64: str
    properties: MjProperties


@define
class MjSeedOut:
    code: int
    description: str
    result: str | None


# -- views ----------------------------------------------------------------------------------

ACTIONS = {
    MjAction.IMAGINE: "IMAGINE",
    MjAction.UPSCALE: "UPSCALE",
    MjAction.VARIATION: "VARIATION",
    MjAction.RESET: "REROLL",
    MjAction.DESCRIBE: "DESCRIBE",
    MjAction.SOLO_VARIATION: "VARIATION",
    MjAction.SOLO_LOW_VARIATION: "LOW_VARIATION",
    MjAction.SOLO_HIGH_VARIATION: "HIGH_VARIATION",
    MjAction.EXPAND: "PAN",
    MjAction.ZOOMOUT: "ZOOM",
}
"""Our actions by midjourney-proxy(-plus)'s names (new-api's ``MjAction*``)."""


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _progress(task: Task) -> str:
    if task.status is TaskStatus.SUCCESS:
        return "100%"
    if task.status is TaskStatus.FAILURE:
        return ""  # as novicezk's fail(): new-api refunds a failure that is not at 100%
    return f"{task.progress}%"


def _description(task: Task, action: MjAction) -> str:
    if action is MjAction.IMAGINE:
        return f"/imagine {task.prompt}"
    if action is MjAction.DESCRIBE:
        return f"/describe {task.params.get('upload_filename', '')}".rstrip()
    index = task.params.get("index", 1)
    short = {MjAction.UPSCALE: f"U{index}", MjAction.VARIATION: f"V{index}", MjAction.RESET: "R"}
    return f"/up {task.parent_task_id} {short.get(action, action.value)}"


def task_view(task: Task) -> MjTask:
    action = MjAction(task.action)
    prompts = task.result.get("prompts")
    final = "\n\n".join(prompts) if prompts else task.prompt
    return MjTask(
        id=task.task_id,
        action=ACTIONS[action],
        customId=pressed(task) or "",  # "" for an imagine or describe
        botType="MID_JOURNEY",
        status=task.status,
        progress=_progress(task),
        prompt=task.prompt,
        promptEn=task.prompt,  # nothing is translated here
        description=_description(task, action),
        state=task.params.get("state"),
        submitTime=int(task.created_at.timestamp() * 1000),
        startTime=_ms(task.started_at),
        finishTime=_ms(task.finished_at),
        imageUrl=task.image_url,
        failReason=task.fail_reason,
        buttons=[MjButton(b.custom_id, b.emoji, b.label, 2, 2) for b in buttons(task)],
        maskBase64="",
        properties=MjProperties(
            finalPrompt=final,
            finalZhPrompt="",
            messageId=task.msg_id,
            messageHash=task.msg_hash,
            prompts=None if prompts is None else list(prompts),
        ),
    )


def accepted(task: Task) -> MjSubmitOut:
    """Code 1 when it runs at Discord, 22 when it waits for a slot."""
    if task.status is TaskStatus.NOT_START:
        return MjSubmitOut(Code.IN_QUEUE, "In queue, waiting for a free slot", task.task_id)
    return MjSubmitOut(Code.SUCCESS, "Submit success", task.task_id)

"""The Midjourney surface's bodies and answers (yokonsan- and niehao-compatible).

Bodies are read as upstream's pydantic models read them (see :func:`make_converter`):
unknown keys ignored, ``"1"`` is 1, a numeric id is a string, ``picurl: ""`` is none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from attrs import define, field

from mjcore import midjourney as mj
from mjcore.midjourney import Attachment, Embed, EventType, ListenerEvent, MjAction
from mjcore.services.midjourney import ParentRef, QueueStatus
from mjcore.services.tasks import PAGE_LIMIT, PAGE_OFFSET
from mjcore.tasks import TASK_ID, FailureKind, Provider, Task, TaskStatus

from .schema import BadRequest, Notifiable, Open, Snowflake, make_converter, rule

CONVERTER = make_converter(lenient=True)


# -- bodies ---------------------------------------------------------------------------------


@define(kw_only=True)
class ImagineIn(Open, Notifiable):
    prompt: str = rule(mj.PROMPT)
    picurl: str | None = rule(mj.PICURL, None)


@define(kw_only=True)
class GridIn(Open, Notifiable):
    """Which finished grid or image to act on: ``{task_id}``, or yokonsan's
    ``{msg_id, msg_hash, trigger_id}`` (niehao sends the grid's task id as ``trigger_id``)."""

    task_id: str | None = rule(TASK_ID, None)
    msg_id: Snowflake | None = None
    msg_hash: str | None = rule(mj.MSG_HASH, None)
    trigger_id: str | None = rule(mj.TRIGGER_ID, None)

    def parent(self) -> ParentRef:
        if self.task_id is not None:
            return ParentRef(task_id=self.task_id)
        if self.msg_id is None or self.msg_hash is None or self.trigger_id is None:
            raise BadRequest("give task_id, or msg_id, msg_hash and trigger_id")
        return ParentRef(msg_id=self.msg_id, msg_hash=self.msg_hash, trigger_id=self.trigger_id)


@define(kw_only=True)
class IndexedIn(GridIn):
    index: int = rule(mj.INDEX)


@define(kw_only=True)
class ExpandIn(GridIn):
    direction: str = rule(mj.DIRECTION)


@define(kw_only=True)
class ZoomIn(GridIn):
    zoomout: int = rule(mj.ZOOMOUT)


BUTTON_BODIES: dict[MjAction, type[GridIn]] = {
    MjAction.UPSCALE: IndexedIn,
    MjAction.VARIATION: IndexedIn,
    MjAction.EXPAND: ExpandIn,
    MjAction.ZOOMOUT: ZoomIn,
}
"""The body of each button endpoint; the others take a bare :class:`GridIn`."""


@define(kw_only=True)
class DescribeIn(Open, Notifiable):
    upload_filename: str = rule(mj.UPLOAD_FILENAME)
    trigger_id: str = rule(mj.TRIGGER_ID)


@define(kw_only=True)
class MessageIn(Open):
    upload_filename: str = rule(mj.UPLOAD_FILENAME)


@define(kw_only=True)
class ReleaseIn(Open):
    trigger_id: str = rule(mj.TRIGGER_ID)


@define(kw_only=True)
class TasksQuery:
    status: TaskStatus | None = None
    limit: int = rule(PAGE_LIMIT, 20)
    offset: int = rule(PAGE_OFFSET, 0)


@define(kw_only=True)
class AttachmentIn(Open):
    url: str = rule(mj.EVENT_URL)
    filename: str = rule(mj.EVENT_TEXT, "")


@define(kw_only=True)
class EmbedImageIn(Open):
    url: str = rule(mj.EVENT_URL)


@define(kw_only=True)
class EmbedIn(Open):
    title: str = rule(mj.EVENT_TEXT, "")
    description: str = rule(mj.EVENT_TEXT, "")
    image: EmbedImageIn | None = None


@define(kw_only=True)
class EventIn(Open):
    """What yokonsan's listener bot posts (it carries more keys than we read)."""

    type: str = rule(mj.EVENT_TYPE)
    id: Snowflake
    content: str = rule(mj.EVENT_TEXT, "")
    attachments: list[AttachmentIn] = field(factory=list)
    embeds: list[EmbedIn] = field(factory=list)
    trigger_id: str | None = rule(mj.TRIGGER_ID, None)

    def event(self) -> ListenerEvent | None:
        """The core's event, or None for an event type we do not act on."""
        try:
            kind = EventType(self.type)
        except ValueError:
            return None
        return ListenerEvent(
            type=kind,
            message_id=self.id,
            content=self.content,
            trigger_id=self.trigger_id,
            attachments=tuple(Attachment(a.url, a.filename) for a in self.attachments[:10]),
            embeds=tuple(
                Embed(e.title, e.description, image_url=e.image.url if e.image else None)
                for e in self.embeds[:10]
            ),
        )


# -- answers --------------------------------------------------------------------------------


@define
class Accepted:
    """A consuming endpoint's answer (niehao reads ``code == 0`` and ``result``)."""

    code: Literal[0]
    message: str
    trigger_id: str
    trigger_type: str
    task_id: str
    result: str
    status: TaskStatus


@define
class Buttons:
    """niehao's handle for follow-ups."""

    msg_id: str | None
    msg_hash: str | None


@define
class TaskOut:
    """A task as both surfaces' clients see it (times in ISO 8601, UTC)."""

    task_id: str
    provider: Provider
    trigger_id: str | None
    trigger_type: str
    status: TaskStatus
    progress: int
    prompt: str
    image_url: str | None
    imageUrl: str | None
    fail_reason: str | None
    msg_id: str | None
    msg_hash: str | None
    buttons: Buttons
    parent_task_id: str | None
    index: int | None
    discord_account: str | None  # the pool's account that ran it (its name only)
    cost: int
    refunded: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    prompts: list[str] | None


@define
class TaskList:
    success: Literal[True]
    data: list[TaskOut]
    total: int


NiehaoStatus = Literal["FINISH", "RUNNING", "TIMEOUT", "BANNED", "ERROR"]


@define
class ResultData:
    task_status: NiehaoStatus
    file_url: str | None


@define
class ResultOut:
    code: Literal[0]
    data: ResultData


@define
class QueueData:
    """niehao's queue view, of the caller's own jobs: trigger ids and when each started."""

    concur_queue_size: int
    wait_queue_size: int
    max_concur_size: int
    max_wait_size: int
    concur_tasks: list[str]
    concur_start_times: dict[str, str]


@define
class QueueOut:
    code: Literal[0]
    data: QueueData


@define
class UploadOut:
    message: str
    upload_filename: str
    upload_url: str
    trigger_id: str


@define
class MessageOut:
    message: str
    picurl: str


@define
class ReleaseOut:
    message: str
    trigger_id: str
    trigger_type: str
    released: int


@define
class EventOut:
    message: Literal["success", "unchanged", "ignored"]


@define
class Detail(Open):
    """This surface's error body (a 502 also carries the refunded task's ids)."""

    detail: str
    code: int | None = None


# -- views ----------------------------------------------------------------------------------


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def trigger_type(task: Task) -> str:
    if task.provider is Provider.MIDJOURNEY:
        return MjAction(task.action).trigger_type
    return task.action


def task_view(task: Task) -> TaskOut:
    prompts = task.result.get("prompts")
    return TaskOut(
        task_id=task.task_id,
        provider=task.provider,
        trigger_id=task.trigger_id,
        trigger_type=trigger_type(task),
        status=task.status,
        progress=task.progress,
        prompt=task.prompt,
        image_url=task.image_url,
        imageUrl=task.image_url,
        fail_reason=task.fail_reason,
        msg_id=task.msg_id,
        msg_hash=task.msg_hash,
        buttons=Buttons(task.msg_id, task.msg_hash),
        parent_task_id=task.parent_task_id,
        index=task.params.get("index"),
        discord_account=task.worker,
        cost=task.cost,
        refunded=task.refunded,
        created_at=task.created_at.isoformat(),
        started_at=_when(task.started_at),
        finished_at=_when(task.finished_at),
        prompts=None if prompts is None else list(prompts),
    )


def accepted_view(task: Task) -> Accepted:
    assert task.trigger_id is not None
    return Accepted(
        code=0,
        message="success",
        trigger_id=task.trigger_id,
        trigger_type=trigger_type(task),
        task_id=task.task_id,
        result=task.task_id,
        status=task.status,
    )


_NIEHAO: dict[FailureKind, NiehaoStatus] = {
    FailureKind.TIMEOUT: "TIMEOUT",
    FailureKind.BANNED: "BANNED",
}


def result_view(task: Task) -> ResultOut:
    """niehao's ``/result``: FINISH with the file, RUNNING, or why it failed."""
    status: NiehaoStatus
    if task.status is TaskStatus.SUCCESS:
        status = "FINISH"
    elif task.status is TaskStatus.FAILURE:
        status = _NIEHAO.get(task.failure or FailureKind.ERROR, "ERROR")
    else:
        status = "RUNNING"
    return ResultOut(0, ResultData(status, task.image_url if status == "FINISH" else None))


def queue_view(status: QueueStatus) -> QueueOut:
    started = {t.trigger_id or t.task_id: (t.started_at or t.created_at) for t in status.running}
    return QueueOut(
        0,
        QueueData(
            concur_queue_size=len(status.running),
            wait_queue_size=status.waiting,
            max_concur_size=status.limits.concurrency,
            max_wait_size=status.limits.queue_size,
            concur_tasks=list(started),
            concur_start_times={k: v.isoformat() for k, v in started.items()},
        ),
    )

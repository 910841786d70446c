"""Generation tasks of either provider and their status machine."""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import evolve, field, frozen

from .errors import InvalidTransition
from .limits import Text

TASK_ID = Text("task_id", 64, 1, pattern=r"[0-9A-Za-z_-]+", hint="a task id")


class TaskStatus(enum.StrEnum):
    NOT_START = "NOT_START"
    SUBMITTED = "SUBMITTED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.SUCCESS, TaskStatus.FAILURE)

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    TaskStatus.NOT_START: 0,
    TaskStatus.SUBMITTED: 1,
    TaskStatus.IN_PROGRESS: 2,
    TaskStatus.SUCCESS: 3,
    TaskStatus.FAILURE: 3,
}


class FailureKind(enum.StrEnum):
    """Why a task failed, for clients that branch on it (niehao's ``task_status``)."""

    ERROR = "error"  # the provider reported an error, or we could not finish
    REFUSED = "refused"  # the provider refused the submission
    TIMEOUT = "timeout"
    BANNED = "banned"  # the provider refused the prompt
    FILTERED = "filtered"  # the provider filtered its result


class Provider(enum.StrEnum):
    MIDJOURNEY = "midjourney"
    FIREWORKS = "fireworks"


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@frozen
class Task:
    """One job: what was asked, by whom, what it cost, and where it got to."""

    task_id: str
    account_id: int
    provider: Provider
    action: str
    prompt: str
    cost: int
    created_at: datetime
    status: TaskStatus = TaskStatus.NOT_START
    params: Mapping[str, Any] = field(factory=dict, converter=_frozen_mapping)
    parent_task_id: str | None = None
    progress: int = 0
    image_url: str | None = None
    fail_reason: str | None = None
    trigger_id: str | None = None
    msg_id: str | None = None
    msg_hash: str | None = None
    provider_ref: str | None = None
    result: Mapping[str, Any] = field(factory=dict, converter=_frozen_mapping)
    refunded: bool = False
    holds_slot: bool = False  # running at a provider with a concurrency limit
    worker: str | None = None  # the provider account that runs it (a Discord account)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_event_at: datetime | None = None  # the provider's latest word on it

    @property
    def failure(self) -> FailureKind | None:
        """Why it failed (None unless it did)."""
        if self.status is not TaskStatus.FAILURE:
            return None
        try:
            return FailureKind(str(self.result.get("failure")))
        except ValueError:
            return FailureKind.ERROR

    def advance(self, to: TaskStatus, now: datetime, **changes: Any) -> Task:
        """The task moved to ``to`` (forward only; terminal states are final).

        Every move, a repeated ``IN_PROGRESS`` too, is an event: it restarts the idle timer.
        """
        if self.status.terminal or to.rank < self.status.rank:
            raise InvalidTransition(f"task {self.task_id}: {self.status} -> {to}")
        changes.setdefault("last_event_at", now)
        if to in (TaskStatus.SUBMITTED, TaskStatus.IN_PROGRESS) and self.started_at is None:
            changes.setdefault("started_at", now)
        if to.terminal:
            changes.setdefault("finished_at", now)
            if self.started_at is None:
                changes.setdefault("started_at", now)
        if to is TaskStatus.SUCCESS:
            changes.setdefault("progress", 100)
        return evolve(self, status=to, **changes)


MUTABLE_FIELDS = (
    "status",
    "progress",
    "image_url",
    "fail_reason",
    "trigger_id",
    "msg_id",
    "msg_hash",
    "provider_ref",
    "result",
    "started_at",
    "finished_at",
    "last_event_at",
    "worker",
)
"""What :meth:`TaskRepository.save` writes.

``refunded`` is only set by ``mark_refunded`` and ``holds_slot`` only by ``set_holds_slot``:
each has its own guarded update, so a save can never undo them.
"""


def new_task_id() -> str:
    """An opaque, unguessable task id."""
    return secrets.token_hex(10)

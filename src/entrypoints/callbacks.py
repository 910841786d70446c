"""What a client's callback receives: the task as its surface shows it, and the event."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mjcore.tasks import Task
from mjcore.webhooks import Delivery, HookStyle, WebhookEvent

from . import mj_schema
from .http import OUT
from .trigger_schema import task_view

YOKONSAN_TYPES = {
    WebhookEvent.STARTED: "start",
    WebhookEvent.PROGRESS: "generating",
    WebhookEvent.SUCCEEDED: "end",
    WebhookEvent.FAILED: "error",
}
"""The event in the words of yokonsan's listener (``type``), for receivers written for it."""


def mjcore_body(task: Task, event: WebhookEvent) -> dict[str, Any]:
    """The task as ``GET /v1/api/trigger/task/{id}`` returns it, with ``event`` and
    yokonsan's ``type``."""
    view: dict[str, Any] = OUT.unstructure(task_view(task))
    return view | {"event": event.value, "type": YOKONSAN_TYPES[event]}


def novicezk_body(task: Task, event: WebhookEvent) -> dict[str, Any]:
    """midjourney-proxy's task object, as ``GET /mj/task/{id}/fetch`` returns it."""
    view: dict[str, Any] = OUT.unstructure(mj_schema.task_view(task))
    return view


Body = Callable[[Task, WebhookEvent], dict[str, Any]]
BODIES: dict[HookStyle, Body] = {HookStyle.MJCORE: mjcore_body, HookStyle.NOVICEZK: novicezk_body}
"""Each hook style's body (a surface that speaks another client's language adds its own)."""


def render(delivery: Delivery, task: Task) -> str:
    """The JSON a hook receives for ``delivery`` (its style's body of the task)."""
    body = BODIES[delivery.style](task, delivery.event)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

"""What a client's callback receives: the task as its surface shows it, and the event."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mjcore.tasks import Task
from mjcore.webhooks import Delivery, HookStyle

from .http import OUT
from .trigger_schema import task_view


def mjcore_body(task: Task) -> dict[str, Any]:
    """The task as ``GET /v1/api/trigger/task/{id}`` returns it."""
    view: dict[str, Any] = OUT.unstructure(task_view(task))
    return view


BODIES: dict[HookStyle, Callable[[Task], dict[str, Any]]] = {HookStyle.MJCORE: mjcore_body}
"""Each hook style's body (a surface that speaks another client's language adds its own)."""


def render(delivery: Delivery, task: Task) -> str:
    """The JSON a hook receives for ``delivery``: the view of the task, plus ``event``."""
    body = BODIES[delivery.style](task) | {"event": delivery.event.value}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

"""The task status machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mjcore.errors import InvalidTransition
from mjcore.tasks import Provider, Task, TaskStatus, new_task_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _task(**changes: object) -> Task:
    return Task(
        task_id="t1",
        account_id=1,
        provider=Provider.MIDJOURNEY,
        action="imagine",
        prompt="p",
        cost=1,
        created_at=T0,
        **changes,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (TaskStatus.NOT_START, TaskStatus.SUBMITTED),
        (TaskStatus.NOT_START, TaskStatus.FAILURE),
        (TaskStatus.SUBMITTED, TaskStatus.IN_PROGRESS),
        (TaskStatus.SUBMITTED, TaskStatus.SUCCESS),
        (TaskStatus.IN_PROGRESS, TaskStatus.IN_PROGRESS),
        (TaskStatus.IN_PROGRESS, TaskStatus.SUCCESS),
        (TaskStatus.IN_PROGRESS, TaskStatus.FAILURE),
    ],
)
def test_forward_moves_are_allowed(start: TaskStatus, to: TaskStatus) -> None:
    assert _task(status=start).advance(to, T0).status is to


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (TaskStatus.IN_PROGRESS, TaskStatus.SUBMITTED),
        (TaskStatus.SUBMITTED, TaskStatus.NOT_START),
        (TaskStatus.SUCCESS, TaskStatus.FAILURE),
        (TaskStatus.SUCCESS, TaskStatus.SUCCESS),
        (TaskStatus.FAILURE, TaskStatus.SUCCESS),
        (TaskStatus.FAILURE, TaskStatus.IN_PROGRESS),
    ],
)
def test_backward_moves_and_leaving_a_terminal_state_are_refused(
    start: TaskStatus, to: TaskStatus
) -> None:
    with pytest.raises(InvalidTransition):
        _task(status=start).advance(to, T0)


def test_times_and_progress_are_stamped() -> None:
    started = _task().advance(TaskStatus.SUBMITTED, T0 + timedelta(seconds=1))
    done = started.advance(TaskStatus.SUCCESS, T0 + timedelta(seconds=9))

    assert started.started_at == T0 + timedelta(seconds=1)
    assert done.started_at == started.started_at
    assert done.finished_at == T0 + timedelta(seconds=9)
    assert done.progress == 100


def test_a_task_failing_before_it_started_gets_both_times() -> None:
    failed = _task().advance(TaskStatus.FAILURE, T0, fail_reason="queue timeout")

    assert failed.started_at == failed.finished_at == T0
    assert failed.progress == 0 and failed.fail_reason == "queue timeout"


def test_params_are_copied_not_shared() -> None:
    params = {"a": 1}
    task = _task(params=params)
    params["a"] = 2
    assert task.params == {"a": 1}


def test_task_ids_are_unguessable_and_distinct() -> None:
    ids = {new_task_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 20 for i in ids)

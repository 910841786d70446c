"""What happened, said once: every event is one standard-library log line.

The message is the event's name (``task.moved``) and its fields travel in ``extra``, so
the core needs nothing but :mod:`logging`. The server renders the lines (JSON or
key=value, with the request's id) and counts the events as Prometheus metrics; an
embedding application sees ordinary log records whose ``record.__dict__`` holds the
fields. Callers pass ids, amounts and kinds, never a key, token, password or code.

An event is logged where its change is written, inside the unit of work: should that
transaction then fail (the database went away), the failure is logged too and the
change did not happen.
"""

from __future__ import annotations

import logging
from typing import Any

from .ledger import LedgerEntry
from .tasks import Task, TaskStatus

TASKS = logging.getLogger("mjcore.tasks")
LEDGER = logging.getLogger("mjcore.ledger")
WEBHOOKS = logging.getLogger("mjcore.webhooks")

_SECRET_REFERENCES = ("code:",)  # a redemption code is a bearer credit until redeemed


def emit(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with ``fields`` (the one way events are written, core or not)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra=fields)


def task_created(task: Task) -> None:
    """A job was accepted (debited and recorded), waiting or already submitted."""
    emit(
        TASKS,
        logging.INFO,
        "task.created",
        task_id=task.task_id,
        account_id=task.account_id,
        provider=task.provider.value,
        action=task.action,
        cost=task.cost,
        status=task.status.value,
    )


def task_moved(before: Task, after: Task) -> None:
    """A task changed status (INFO) or only its progress (DEBUG)."""
    fields: dict[str, Any] = {
        "task_id": after.task_id,
        "provider": after.provider.value,
        "action": after.action,
        "from": before.status.value,
        "to": after.status.value,
    }
    if after.status is TaskStatus.IN_PROGRESS:
        fields["progress"] = after.progress
    failure = after.failure
    if failure is not None:
        fields["fail_kind"] = failure.value
        fields["reason"] = after.fail_reason
    level = logging.DEBUG if before.status is after.status else logging.INFO
    emit(TASKS, level, "task.moved", **fields)


def task_refunded(task: Task) -> None:
    """A task's cost went back to its account (exactly once per task)."""
    emit(
        TASKS,
        logging.INFO,
        "task.refunded",
        task_id=task.task_id,
        account_id=task.account_id,
        provider=task.provider.value,
        action=task.action,
        amount=task.cost,
    )


def ledger_entry(entry: LedgerEntry) -> None:
    """A balance changed: ``ledger.debit``, ``ledger.refund``, ``ledger.grant``…"""
    reference = entry.reference
    for prefix in _SECRET_REFERENCES:
        if reference.startswith(prefix):
            reference = prefix + "***"
    emit(
        LEDGER,
        logging.INFO,
        f"ledger.{entry.kind.value}",
        account_id=entry.account_id,
        delta=entry.delta,
        reference=reference,
    )


def code_redeemed(account_id: int, credits: int) -> None:
    """A redemption code was spent (the code itself is never logged)."""
    emit(LEDGER, logging.INFO, "code.redeemed", account_id=account_id, credits=credits)


def provider_call(
    provider: str,
    operation: str,
    *,
    duration_s: float,
    outcome: str,
    status: int | None = None,
    detail: str | None = None,
) -> None:
    """One HTTP exchange with a provider (logger ``mjcore.<provider>``). ``outcome`` is
    ``ok``, ``http_error``, ``timeout``, ``network`` or ``cancelled``; ``detail`` is what
    the provider said, already redacted."""
    fields: dict[str, Any] = {
        "provider": provider,
        "operation": operation,
        "outcome": outcome,
        "status": status,
        "duration_ms": round(duration_s * 1000, 1),
    }
    if detail is not None:
        fields["detail"] = detail
    level = logging.DEBUG if outcome == "ok" else logging.WARNING
    emit(logging.getLogger(f"mjcore.{provider}"), level, "provider.call", **fields)


def webhook_delivery(outcome: str, **fields: Any) -> None:
    """One webhook delivery attempt ended: ``outcome`` is ``delivered``, ``retry`` (it will
    be tried again), ``failed`` (given up: a dead letter) or ``gone`` (the receiver answered
    410). Counted as
    ``mjcore_webhook_deliveries_total{outcome}``; ``fields`` (task id, attempt, HTTP
    status…) are logged, never a signing secret."""
    level = logging.INFO if outcome == "delivered" else logging.WARNING
    emit(WEBHOOKS, level, "webhook.delivery", outcome=outcome, **fields)


POOL = logging.getLogger("mjcore.pool")


def account_down(name: str, reason: str, state: str) -> None:
    """A Discord account was taken out of service (``state``: ``disabled``, ``rejected``
    or ``unhealthy``); its jobs were failed and refunded."""
    emit(POOL, logging.WARNING, "pool.account_down", account=name, state=state, reason=reason)

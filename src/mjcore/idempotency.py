"""Idempotency-Key (IETF httpapi draft): a retried request gets the first answer, once paid.

The key is claimed in the same transaction as the debit it guards, so two requests with one
key never both pay, across processes and restarts; the answer is kept once it is known.
"""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import frozen

from .errors import Conflict, InvalidInput, MjcoreError
from .limits import Text

IDEMPOTENCY_KEY = Text(
    "Idempotency-Key", 255, 1, pattern=r"[\x21-\x7e]+", hint="1-255 printable characters"
)


class KeyState(enum.StrEnum):
    RUNNING = "running"  # claimed; the first request has not answered yet
    DONE = "done"  # its answer is kept


@frozen
class Idempotency:
    """A request's key and a digest of what it asked (method, path, body)."""

    key: str
    request_hash: str


@frozen
class KeyRecord:
    account_id: int
    key: str
    request_hash: str
    claim_id: str  # which request holds it: only that one may keep its answer
    state: KeyState
    created_at: datetime
    expires_at: datetime
    task_id: str | None = None
    response_status: int | None = None
    response_body: str | None = None


class IdempotencyMismatch(InvalidInput):
    """The key was used for a different request (422)."""


class IdempotencyInProgress(Conflict):
    """The first request with this key has not answered yet (409)."""


class Replay(MjcoreError):
    """The key's first answer is known: give it again, charge nothing."""

    def __init__(self, record: KeyRecord) -> None:
        super().__init__(f"the answer to Idempotency-Key {record.key!r} is already known")
        self.record = record

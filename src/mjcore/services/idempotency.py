"""Idempotency-Key for consuming requests: claimed with the debit, answered once."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta

from attrs import define, field

from ..clock import Clock
from ..idempotency import (
    Idempotency,
    IdempotencyInProgress,
    IdempotencyMismatch,
    KeyRecord,
    KeyState,
    Replay,
)
from ..ports import Store, UnitOfWork

Guard = Callable[[UnitOfWork], Awaitable[None]]
"""Something to do first in an admission's transaction (before the debit)."""


@define
class Claim:
    """One request's hold on its key, once :meth:`Keys.guard` has run in its transaction."""

    account_id: int
    idempotency: Idempotency
    claim_id: str = field(factory=lambda: secrets.token_hex(12))


@define
class Keys:
    """Idempotency keys: a key is an account's for ``ttl_s`` (a day by default)."""

    store: Store
    clock: Clock
    ttl_s: float = 24 * 3600

    def guard(self, claim: Claim | None, task_id: str | None = None) -> Guard | None:
        """The admission step that takes ``claim``'s key, or raises: :class:`Replay` (its
        answer is known), :class:`IdempotencyInProgress`, :class:`IdempotencyMismatch`
        (the key was used for another request). Nothing is charged when it raises."""
        if claim is None:
            return None

        async def take(uow: UnitOfWork) -> None:
            now = self.clock()
            held = await uow.idempotency.claim(
                KeyRecord(
                    account_id=claim.account_id,
                    key=claim.idempotency.key,
                    request_hash=claim.idempotency.request_hash,
                    claim_id=claim.claim_id,
                    state=KeyState.RUNNING,
                    created_at=now,
                    expires_at=now + timedelta(seconds=self.ttl_s),
                    task_id=task_id,
                )
            )
            if held is None:
                return
            if held.request_hash != claim.idempotency.request_hash:
                raise IdempotencyMismatch("this Idempotency-Key was used for a different request")
            if held.state is KeyState.RUNNING:
                raise IdempotencyInProgress("the first request with this key is still running")
            raise Replay(held)

        return take

    async def remember(self, claim: Claim, status: int, body: str) -> bool:
        """Keep the answer for the key, if this request holds it (else nothing happens)."""
        async with self.store.unit_of_work() as uow:
            kept = await uow.idempotency.complete(
                claim.account_id, claim.idempotency.key, claim.claim_id, status, body
            )
            await uow.commit()
        return kept

    async def purge(self) -> int:
        async with self.store.unit_of_work() as uow:
            purged = await uow.idempotency.purge(self.clock())
            await uow.commit()
        return purged

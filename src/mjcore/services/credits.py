"""Every balance change, inside a unit of work: the counters and the entry move together.

``grant`` and ``adjust`` move ``token_total``; ``debit``, ``refund`` and ``reset`` move
``token_use``. Nothing else in the core writes a ledger entry or touches a counter.
"""

from __future__ import annotations

from datetime import datetime

from .. import events
from ..errors import AccountNotFound, AccountUnavailable, InsufficientCredits
from ..ledger import EntryKind, LedgerEntry
from ..ports import UnitOfWork


async def debit(uow: UnitOfWork, account_id: int, cost: int, reference: str, now: datetime) -> None:
    """Spend ``cost`` credits or raise; the single conditional update decides."""
    if cost <= 0:
        return
    if not await uow.accounts.debit(account_id, cost, now):
        account = await uow.accounts.get(account_id)
        if account is None:
            raise AccountNotFound(f"no account with id {account_id}")
        if not account.active:
            raise AccountUnavailable(f"account {account.user_name!r} is disabled or deleted")
        raise InsufficientCredits(account.credits, cost)
    await _entry(uow, account_id, -cost, EntryKind.DEBIT, reference, now)


async def refund(
    uow: UnitOfWork, account_id: int, cost: int, reference: str, now: datetime
) -> None:
    """Give ``cost`` credits back. Callers guard it so it happens once per reservation."""
    await _use(uow, account_id, cost, EntryKind.REFUND, reference, now)


async def reset(uow: UnitOfWork, account_id: int, used: int, reference: str, now: datetime) -> None:
    """Forget ``used`` credits of spending (the operator's ``reset-usage``)."""
    await _use(uow, account_id, used, EntryKind.RESET, reference, now)


async def grant(
    uow: UnitOfWork, account_id: int, credits: int, reference: str, now: datetime
) -> None:
    """Add ``credits`` to the account's total."""
    await _total(uow, account_id, credits, EntryKind.GRANT, reference, now)


async def adjust(
    uow: UnitOfWork, account_id: int, delta: int, reference: str, now: datetime
) -> None:
    """Move the account's total by ``delta`` (either way: the operator's ``update-tokens``)."""
    await _total(uow, account_id, delta, EntryKind.ADJUST, reference, now)


async def _use(
    uow: UnitOfWork, account_id: int, amount: int, kind: EntryKind, ref: str, now: datetime
) -> None:
    if amount:
        await uow.accounts.change_use(account_id, -amount, now)
        await _entry(uow, account_id, amount, kind, ref, now)


async def _total(
    uow: UnitOfWork, account_id: int, delta: int, kind: EntryKind, ref: str, now: datetime
) -> None:
    if delta:
        await uow.accounts.change_total(account_id, delta, now)
        await _entry(uow, account_id, delta, kind, ref, now)


async def _entry(
    uow: UnitOfWork, account_id: int, delta: int, kind: EntryKind, ref: str, now: datetime
) -> None:
    entry = LedgerEntry(account_id, delta, kind, ref, now)
    await uow.ledger.append(entry)
    events.ledger_entry(entry)

"""Debits and refunds inside a unit of work: the counters and the entry move together."""

from __future__ import annotations

from datetime import datetime

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
    await uow.ledger.append(LedgerEntry(account_id, -cost, EntryKind.DEBIT, reference, now))


async def refund(
    uow: UnitOfWork, account_id: int, cost: int, reference: str, now: datetime
) -> None:
    """Give ``cost`` credits back. Callers guard it so it happens once per reservation."""
    if cost <= 0:
        return
    await uow.accounts.change_use(account_id, -cost, now)
    await uow.ledger.append(LedgerEntry(account_id, cost, EntryKind.REFUND, reference, now))


async def grant(
    uow: UnitOfWork, account_id: int, credits: int, reference: str, now: datetime
) -> None:
    """Add ``credits`` to the account's total."""
    await uow.accounts.change_total(account_id, credits, now)
    await uow.ledger.append(LedgerEntry(account_id, credits, EntryKind.GRANT, reference, now))

"""The credit ledger: append-only entries and the invariant that ties them to the counters."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime

from attrs import frozen


class EntryKind(enum.StrEnum):
    """Why a balance changed. Each kind moves exactly one of the two counters."""

    GRANT = "grant"  # token_total += delta  (codes, account creation)
    ADJUST = "adjust"  # token_total += delta  (operator sets a new total)
    DEBIT = "debit"  # token_use -= delta     (delta < 0: a job was accepted)
    REFUND = "refund"  # token_use -= delta    (delta > 0: a job ended without result)
    RESET = "reset"  # token_use -= delta     (delta = old token_use: usage cleared)

    @property
    def moves_total(self) -> bool:
        """True if this kind changes ``token_total``; otherwise it changes ``token_use``."""
        return self in (EntryKind.GRANT, EntryKind.ADJUST)


@frozen
class LedgerEntry:
    """One change of one account's balance; ``delta`` is the change in credits."""

    account_id: int
    delta: int
    kind: EntryKind
    reference: str
    created_at: datetime
    id: int | None = None


@frozen
class Tally:
    """An account's counters next to the sums of its ledger entries."""

    account_id: int
    user_name: str
    token_total: int
    token_use: int
    entries_total: int  # sum of deltas that move token_total
    entries_use: int  # minus the sum of deltas that move token_use

    @property
    def consistent(self) -> bool:
        return self.token_total == self.entries_total and self.token_use == self.entries_use


@frozen
class LedgerReport:
    """The result of ``ledger verify``."""

    accounts_checked: int
    mismatches: tuple[Tally, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def tally(
    account_id: int,
    user_name: str,
    token_total: int,
    token_use: int,
    entries: Iterable[LedgerEntry],
) -> Tally:
    """Sum ``entries`` of one account the way the counters should have moved."""
    moved_total = moved_use = 0
    for entry in entries:
        if entry.kind.moves_total:
            moved_total += entry.delta
        else:
            moved_use -= entry.delta
    return Tally(account_id, user_name, token_total, token_use, moved_total, moved_use)


def report(tallies: Iterable[Tally]) -> LedgerReport:
    """Collect the tallies whose counters disagree with their entries."""
    checked = list(tallies)
    return LedgerReport(len(checked), tuple(t for t in checked if not t.consistent))

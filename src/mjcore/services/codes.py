"""Redemption-code use cases: issue a batch, redeem one."""

from __future__ import annotations

from datetime import datetime

from .. import events
from ..clock import Clock
from ..codes import (
    CODE_COUNT,
    CODE_CREDITS,
    Redemption,
    RedemptionCode,
    new_code,
    normalize_code,
)
from ..errors import (
    AccountNotFound,
    AccountUnavailable,
    CodeAlreadyRedeemed,
    CodeExpired,
    CodeNotFound,
    Conflict,
)
from ..limits import Whole
from ..ports import Store
from . import credits
from .idempotency import Guard

_ISSUE_ATTEMPTS = 3
LIST_LIMIT = Whole("limit", 1, 100_000)
LIST_OFFSET = Whole("offset", 0, 10**9)


async def issue_codes(
    store: Store,
    clock: Clock,
    credits_each: int,
    count: int,
    *,
    expires_at: datetime | None = None,
) -> list[RedemptionCode]:
    """Create ``count`` (1–1000) new codes worth ``credits_each`` (≥1) each."""
    CODE_CREDITS.check(credits_each)
    CODE_COUNT.check(count)
    now = clock()
    for attempt in range(_ISSUE_ATTEMPTS):
        texts: set[str] = set()
        while len(texts) < count:
            texts.add(new_code())
        codes = [RedemptionCode(text, credits_each, now, expires_at) for text in sorted(texts)]
        try:
            async with store.unit_of_work() as uow:
                await uow.codes.add_many(codes)
                await uow.commit()
        except Conflict:  # 32**16 codes: a collision is next to impossible, but not quite
            if attempt + 1 == _ISSUE_ATTEMPTS:
                raise
            continue
        return codes
    raise AssertionError("unreachable")


async def redeem_code(
    store: Store, clock: Clock, account_id: int, text: str, guard: Guard | None = None
) -> Redemption:
    """Credit the code's value to the account, once, whoever else tries at the same time.

    ``guard`` runs first in the transaction (an Idempotency-Key's claim)."""
    code = normalize_code(text)
    now = clock()
    async with store.unit_of_work() as uow:
        if guard is not None:
            await guard(uow)
        account = await uow.accounts.get(account_id)
        if account is None:
            raise AccountNotFound(f"no account with id {account_id}")
        if not account.active:
            raise AccountUnavailable(f"account {account.user_name!r} is disabled or deleted")
        found = await uow.codes.get(code)
        if found is None:
            raise CodeNotFound(f"no redemption code {code}")
        if found.redeemed_by is not None:
            raise CodeAlreadyRedeemed(f"code {code} was already redeemed")
        if found.expired(now):
            raise CodeExpired(f"code {code} has expired")
        if not await uow.codes.redeem(code, account_id, now):
            raise CodeAlreadyRedeemed(
                f"code {code} was already redeemed"
            )  # someone else's update won
        await credits.grant(uow, account_id, found.credits, f"code:{code}", now)
        after = await uow.accounts.get(account_id)
        await uow.commit()
    events.code_redeemed(account_id, found.credits)
    assert after is not None
    return Redemption(found.credits, after.credits)


async def list_codes(
    store: Store, clock: Clock, limit: int, offset: int = 0, *, unused_only: bool = False
) -> list[RedemptionCode]:
    """Codes, newest first; ``unused_only``: those that can still be redeemed now."""
    LIST_LIMIT.check(limit)
    LIST_OFFSET.check(offset)
    async with store.unit_of_work(readonly=True) as uow:
        found = await uow.codes.list(limit, offset, redeemable_at=clock() if unused_only else None)
    return list(found)


async def disable_code(store: Store, clock: Clock, text: str) -> RedemptionCode:
    """Stop an unused code from being redeemed: it expires now (one guarded update, so a
    redemption at the same moment either wins or finds it expired). A code that has
    already expired stays as it is; a redeemed one raises :class:`CodeAlreadyRedeemed`."""
    code = normalize_code(text)
    async with store.unit_of_work() as uow:
        await uow.codes.expire(code, clock())
        found = await uow.codes.get(code)
        await uow.commit()
    if found is None:
        raise CodeNotFound(f"no redemption code {code}")
    if found.redeemed_by is not None:
        raise CodeAlreadyRedeemed(f"code {code} was already redeemed; it cannot be disabled")
    return found

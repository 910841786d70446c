"""Contract: redemption codes are single use, expire, and grant through the ledger."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from mjcore.codes import CODE_ALPHABET, CODE_LENGTH, Redemption
from mjcore.errors import (
    CodeAlreadyRedeemed,
    CodeExpired,
    CodeNotFound,
    InvalidAmount,
    MalformedCode,
)
from mjcore.ledger import EntryKind
from mjcore.ports import Store
from mjcore.services import accounts, codes, reports

from ..support import FakeClock


async def test_issued_codes_are_sixteen_unambiguous_characters(
    store: Store, clock: FakeClock
) -> None:
    issued = await codes.issue_codes(store, clock, 10, 50)

    assert len({c.code for c in issued}) == 50
    for code in issued:
        assert len(code.code) == CODE_LENGTH and set(code.code) <= set(CODE_ALPHABET)
    assert (await reports.stats(store)).codes == 50


@pytest.mark.parametrize(("credits_each", "count"), [(0, 1), (1, 0), (1, 1001), (-5, 2)])
async def test_issue_out_of_range_is_refused(
    store: Store, clock: FakeClock, credits_each: int, count: int
) -> None:
    with pytest.raises(InvalidAmount):
        await codes.issue_codes(store, clock, credits_each, count)
    assert (await reports.stats(store)).codes == 0


async def test_redeem_grants_credits_once(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 10)).account
    [code] = await codes.issue_codes(store, clock, 7, 1)

    result = await codes.redeem_code(store, clock, account.id, code.code)

    assert result == Redemption(credits=7, balance=17)
    with pytest.raises(CodeAlreadyRedeemed):
        await codes.redeem_code(store, clock, account.id, code.code)
    async with store.unit_of_work(readonly=True) as uow:
        entries = await uow.ledger.entries(account.id)
    assert [(e.kind, e.delta, e.reference) for e in entries][-1] == (
        EntryKind.GRANT,
        7,
        f"code:{code.code}",
    )
    assert (await reports.stats(store)).used_codes == 1


async def test_code_input_ignores_case_spaces_and_dashes(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 0)).account
    [code] = await codes.issue_codes(store, clock, 3, 1)
    text = code.code.lower()
    messy = f" {text[:4]}-{text[4:8]} {text[8:12]}-{text[12:]} "

    assert (await codes.redeem_code(store, clock, account.id, messy)).balance == 3


async def test_unknown_and_malformed_codes_are_refused(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 0)).account

    with pytest.raises(CodeNotFound):
        await codes.redeem_code(store, clock, account.id, "A" * CODE_LENGTH)
    for bad in ("", "SHORT", "O" * CODE_LENGTH, "A" * 17, "AAAA0AAAA1AAAAAA"):
        with pytest.raises(MalformedCode):
            await codes.redeem_code(store, clock, account.id, bad)
    assert (await accounts.get_account_by_id(store, account.id)).credits == 0


async def test_expired_code_is_refused(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 0)).account
    [code] = await codes.issue_codes(store, clock, 5, 1, expires_at=clock() + timedelta(days=1))

    clock.advance(days=1, seconds=1)

    with pytest.raises(CodeExpired):
        await codes.redeem_code(store, clock, account.id, code.code)
    assert (await accounts.get_account_by_id(store, account.id)).credits == 0
    assert (await reports.stats(store)).used_codes == 0


async def test_code_redeemed_before_expiry_works(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 0)).account
    [code] = await codes.issue_codes(store, clock, 5, 1, expires_at=clock() + timedelta(days=1))

    clock.advance(hours=23)

    assert (await codes.redeem_code(store, clock, account.id, code.code)).credits == 5


async def test_twenty_accounts_racing_for_one_code_one_wins(store: Store, clock: FakeClock) -> None:
    racers = [
        (await accounts.create_account(store, clock, f"racer{i}", 0)).account for i in range(20)
    ]
    [code] = await codes.issue_codes(store, clock, 10, 1)

    results = await asyncio.gather(
        *(codes.redeem_code(store, clock, racer.id, code.code) for racer in racers),
        return_exceptions=True,
    )

    won = [r for r in results if isinstance(r, Redemption)]
    lost = [r for r in results if isinstance(r, CodeAlreadyRedeemed)]
    assert (len(won), len(lost)) == (1, 19)
    counts = await reports.stats(store)
    assert (counts.used_codes, counts.credits) == (1, 10)
    assert (await reports.verify_ledger(store)).ok


async def test_expire_is_guarded_unused_unexpired_codes_only(
    store: Store, clock: FakeClock
) -> None:
    account = (await accounts.create_account(store, clock, "alice", 0)).account
    fresh, used = await codes.issue_codes(store, clock, 5, 2)
    await codes.redeem_code(store, clock, account.id, used.code)

    async with store.unit_of_work() as uow:
        first = await uow.codes.expire(fresh.code, clock())
        again = await uow.codes.expire(fresh.code, clock())  # already expired at this time
        redeemed = await uow.codes.expire(used.code, clock())
        unknown = await uow.codes.expire("A" * CODE_LENGTH, clock())
        await uow.commit()

    assert (first, again, redeemed, unknown) == (True, False, False, False)
    async with store.unit_of_work(readonly=True) as uow:
        expired = await uow.codes.get(fresh.code)
        kept = await uow.codes.get(used.code)
    assert expired is not None and expired.expires_at == clock()
    assert kept is not None and kept.expires_at is None and kept.redeemed_by == account.id


async def test_a_disabled_code_can_no_longer_be_redeemed(store: Store, clock: FakeClock) -> None:
    account = (await accounts.create_account(store, clock, "alice", 0)).account
    [code] = await codes.issue_codes(store, clock, 5, 1, expires_at=clock() + timedelta(days=9))

    disabled = await codes.disable_code(store, clock, code.code.lower())
    clock.advance(seconds=1)
    later = await codes.disable_code(store, clock, code.code)  # idempotent

    assert disabled.expires_at == later.expires_at == clock() - timedelta(seconds=1)
    with pytest.raises(CodeExpired):
        await codes.redeem_code(store, clock, account.id, code.code)
    assert (await accounts.get_account_by_id(store, account.id)).credits == 0


async def test_disabling_a_redeemed_or_unknown_code_is_refused(
    store: Store, clock: FakeClock
) -> None:
    account = (await accounts.create_account(store, clock, "alice", 0)).account
    [code] = await codes.issue_codes(store, clock, 5, 1)
    await codes.redeem_code(store, clock, account.id, code.code)

    with pytest.raises(CodeAlreadyRedeemed):
        await codes.disable_code(store, clock, code.code)
    with pytest.raises(CodeNotFound):
        await codes.disable_code(store, clock, "A" * CODE_LENGTH)
    with pytest.raises(MalformedCode):
        await codes.disable_code(store, clock, "nope")
    assert (await accounts.get_account_by_id(store, account.id)).credits == 5


async def test_disable_racing_redemptions_one_of_them_wins(store: Store, clock: FakeClock) -> None:
    racers = [
        (await accounts.create_account(store, clock, f"racer{i}", 0)).account for i in range(10)
    ]
    [code] = await codes.issue_codes(store, clock, 10, 1)

    results = await asyncio.gather(
        codes.disable_code(store, clock, code.code),
        *(codes.redeem_code(store, clock, racer.id, code.code) for racer in racers),
        return_exceptions=True,
    )

    async with store.unit_of_work(readonly=True) as uow:
        final = await uow.codes.get(code.code)
    assert final is not None
    won = [r for r in results[1:] if isinstance(r, Redemption)]
    if final.redeemed_by is None:  # the disable came first: nobody got the credits
        assert final.expired(clock()) and won == []
        assert not isinstance(results[0], Exception)
    else:  # a redemption came first: the disable was refused, the code stays as it was
        assert final.expires_at is None and len(won) == 1
        assert isinstance(results[0], CodeAlreadyRedeemed)
    counts = await reports.stats(store)
    assert counts.credits == 10 * len(won)
    assert (await reports.verify_ledger(store)).ok


async def test_codes_are_listed_newest_first_and_filtered_to_redeemable(
    store: Store, clock: FakeClock
) -> None:
    account = (await accounts.create_account(store, clock, "alice", 0)).account
    old = await codes.issue_codes(store, clock, 1, 3)
    clock.advance(minutes=1)
    new = await codes.issue_codes(store, clock, 2, 2)
    await codes.redeem_code(store, clock, account.id, old[0].code)
    await codes.disable_code(store, clock, old[1].code)

    listed = await codes.list_codes(store, clock, 100)
    page = await codes.list_codes(store, clock, 2, 1)
    usable = await codes.list_codes(store, clock, 100, unused_only=True)

    expected = sorted(c.code for c in new) + sorted(c.code for c in old)
    assert [c.code for c in listed] == expected
    assert [c.code for c in page] == expected[1:3]
    assert [c.code for c in usable] == [*sorted(c.code for c in new), old[2].code]

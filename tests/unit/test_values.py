"""Accounts, app keys, codes, prices and the ledger tally, as plain values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mjcore.accounts import Account, check_user_name, digest_app_key, new_app_key
from mjcore.codes import CODE_ALPHABET, normalize_code
from mjcore.errors import InvalidAmount, InvalidUserName, MalformedCode
from mjcore.ledger import EntryKind, LedgerEntry, report, tally
from mjcore.pricing import Prices

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_app_keys_are_long_random_and_never_look_like_options() -> None:
    keys = {new_app_key() for _ in range(500)}
    assert len(keys) == 500
    assert all(len(k) >= 32 and k.isalnum() for k in keys)


def test_the_stored_digest_is_sha256_hex() -> None:
    assert digest_app_key("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


@pytest.mark.parametrize("name", ["a", "test_user", "A.b-c_9", "x" * 64])
def test_valid_user_names(name: str) -> None:
    assert check_user_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "a/b", "名字", "a\n"])
def test_invalid_user_names(name: str) -> None:
    with pytest.raises(InvalidUserName):
        check_user_name(name)


def test_balance_and_activity() -> None:
    account = Account(1, "a", "d", 10, 3, T0, T0)
    assert account.credits == 7 and account.active
    assert not Account(1, "a", "d", 10, 3, T0, T0, disabled=True).active
    assert not Account(1, "a", "d", 10, 3, T0, T0, deleted_at=T0).active


def test_codes_normalize_case_spaces_and_dashes() -> None:
    assert normalize_code(" abcd-efgh jkmn-pqrs ") == "ABCDEFGHJKMNPQRS"


@pytest.mark.parametrize("text", ["ABCDEFGHJKMNPQR", "ABCDEFGHJKMNPQRSTU", "ABCDEFGHIJKLMNOP", ""])
def test_malformed_codes(text: str) -> None:
    with pytest.raises(MalformedCode):
        normalize_code(text)


def test_the_code_alphabet_has_no_lookalikes() -> None:
    assert not set("01IO") & set(CODE_ALPHABET) and len(CODE_ALPHABET) == 32


def test_prices_default_and_table() -> None:
    prices = Prices({"imagine": 2, "upload": 0})
    assert (prices.of("imagine"), prices.of("upload"), prices.of("upscale")) == (2, 0, 1)
    with pytest.raises(InvalidAmount):
        Prices({"imagine": -1})
    with pytest.raises(InvalidAmount):
        Prices({}, default=-1)


def test_tally_moves_the_right_counter_per_kind() -> None:
    entries = [
        LedgerEntry(1, 10, EntryKind.GRANT, "", T0),
        LedgerEntry(1, 5, EntryKind.ADJUST, "", T0),
        LedgerEntry(1, -1, EntryKind.DEBIT, "", T0),
        LedgerEntry(1, -1, EntryKind.DEBIT, "", T0),
        LedgerEntry(1, 1, EntryKind.REFUND, "", T0),
        LedgerEntry(1, 1, EntryKind.RESET, "", T0),
    ]
    good = tally(1, "a", 15, 0, entries)
    bad = tally(1, "a", 15, 1, entries)
    assert good.consistent and not bad.consistent
    assert report([good, bad]).mismatches == (bad,)
    assert report([good]).ok

"""Passwords (scrypt) and JWTs (HS256, pinned, expiring)."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt
import pytest

from entrypoints.tokens import Claim, InvalidToken, Tokens
from mjcore.accounts import Account
from mjcore.errors import WeakPassword
from mjcore.passwords import check_password, hash_password, verify_password

from ..support import FakeClock

SECRET = "k" * 40


def test_password_hashes_are_salted_and_verify() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", first)
    assert not verify_password("correct horsf", first)
    assert not verify_password("correct horse", "md5$whatever")
    assert not verify_password("correct horse", "garbage")


@pytest.mark.parametrize("password", ["", "1234567", "x" * 1025])
def test_weak_or_huge_passwords_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword):
        check_password(password)


def _account() -> Account:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return Account(42, "alice", "d", 0, 0, t, t)


def test_a_token_names_its_account_until_it_expires() -> None:
    clock = FakeClock()
    tokens = Tokens(SECRET, 60, clock)
    token = tokens.issue(_account())

    assert tokens.verify(token) == Claim(42, 0)
    clock.advance(seconds=61)
    with pytest.raises(InvalidToken):
        tokens.verify(token)


def test_tokens_of_another_key_or_algorithm_are_refused() -> None:
    clock = FakeClock()
    tokens = Tokens(SECRET, 60, clock)
    now = int(clock().timestamp())
    claims = {"sub": "42", "ver": 0, "iat": now, "exp": now + 60}
    for token in (
        jwt.encode(claims | {"ver": "0"}, SECRET, algorithm="HS256"),
        jwt.encode({k: v for k, v in claims.items() if k != "ver"}, SECRET, algorithm="HS256"),
        jwt.encode(claims, "another key of enough length 1234567890", algorithm="HS256"),
        jwt.encode(claims, SECRET * 2, algorithm="HS512"),
        jwt.encode({"sub": "42"}, SECRET, algorithm="HS256"),
        "a.b.c",
    ):
        with pytest.raises(InvalidToken):
            tokens.verify(token)

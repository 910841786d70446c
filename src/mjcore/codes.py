"""Redemption codes: 16 characters of an unambiguous alphabet, single use."""

from __future__ import annotations

import secrets
from datetime import datetime

from attrs import frozen

from .errors import MalformedCode
from .limits import Text, Whole

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 16
CODE_CREDITS = Whole("credits", 1, 1_000_000)
CODE_COUNT = Whole("count", 1, 1000)
CODE_EXPIRY_DAYS = Whole("expires_in_days", 1, 3650)
CODE_TEXT = Text("code", 64)  # dashes and spaces allowed; normalize_code checks the rest


@frozen
class RedemptionCode:
    """A code worth ``credits``; ``redeemed_by`` is set once, by the one redemption."""

    code: str
    credits: int
    created_at: datetime
    expires_at: datetime | None = None
    redeemed_by: int | None = None
    redeemed_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@frozen
class Redemption:
    """What a successful redemption gave: the code's credits and the new balance."""

    credits: int
    balance: int


def new_code() -> str:
    """A fresh random code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str:
    """Canonical form of user input: case-insensitive, spaces and dashes ignored."""
    if not isinstance(text, str):
        raise MalformedCode("a redemption code is text")
    code = text.replace(" ", "").replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        raise MalformedCode(f"a redemption code is {CODE_LENGTH} characters of {CODE_ALPHABET}")
    return code

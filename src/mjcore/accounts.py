"""Accounts and their app keys."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from datetime import datetime

from attrs import frozen

from .errors import InvalidUserName

_USER_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
APP_KEY_LENGTH = 40
_KEY_ALPHABET = string.ascii_letters + string.digits  # no "-": keys never look like options


@frozen
class Account:
    """One customer: the seed's ``user_info`` row plus password, flags and times."""

    id: int
    user_name: str
    app_key_digest: str
    token_total: int
    token_use: int
    created_at: datetime
    updated_at: datetime
    password_hash: str | None = None
    disabled: bool = False
    deleted_at: datetime | None = None

    @property
    def credits(self) -> int:
        """The spendable balance."""
        return self.token_total - self.token_use

    @property
    def active(self) -> bool:
        """May this account authenticate and spend?"""
        return not self.disabled and self.deleted_at is None


def check_user_name(name: str) -> str:
    """Return ``name`` if it is a valid user name, else raise :class:`InvalidUserName`."""
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise InvalidUserName("user name must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return name


def new_app_key() -> str:
    """A fresh app key (40 letters and digits from ``secrets``); shown to its owner once."""
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(APP_KEY_LENGTH))


def digest_app_key(app_key: str) -> str:
    """The SHA-256 hex digest stored in place of the key; look-ups hash the presented key."""
    return hashlib.sha256(app_key.encode("utf-8", "surrogatepass")).hexdigest()

"""Accounts and their app keys."""

from __future__ import annotations

import hashlib
import secrets
import string
from datetime import datetime

from attrs import frozen

from .errors import InvalidUserName
from .limits import Text

USER_NAME = Text(
    "username",
    64,
    1,
    pattern=r"[A-Za-z0-9_.-]+",
    hint="1-64 characters of A-Z a-z 0-9 _ . -",
    error=InvalidUserName,
)
GIVEN_USER_NAME = Text("username", 64)  # at login: any text that could be a name
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
    token_version: int = 0  # a JWT is good only for the version it was issued under

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
    return USER_NAME.check(name)


def new_app_key() -> str:
    """A fresh app key (40 letters and digits from ``secrets``); shown to its owner once."""
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(APP_KEY_LENGTH))


def digest_app_key(app_key: str) -> str:
    """The SHA-256 hex digest stored in place of the key; look-ups hash the presented key."""
    return hashlib.sha256(app_key.encode("utf-8", "surrogatepass")).hexdigest()

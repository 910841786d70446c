"""Sealing secrets we must keep (Discord tokens) before they reach the database.

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under a key derived from
``MJCORE_ACCOUNT_KEY``; without one, from a random key the database keeps for itself,
which keeps tokens out of casual reads of the table but not out of a full dump.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from attrs import frozen
from cryptography.fernet import Fernet, InvalidToken

KEPT_KEY = "account_key"  # the mjcore_setting row holding the generated key


def new_key() -> str:
    return secrets.token_urlsafe(32)


class SealError(Exception):
    """A sealed value cannot be opened with this key (the key changed)."""


@frozen
class Sealer:
    """Seals and opens text under one key (any text; it is stretched with SHA-256)."""

    key: str

    def _fernet(self) -> Fernet:
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(self.key.encode()).digest()))

    def seal(self, value: str) -> str:
        return self._fernet().encrypt(value.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet().decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            raise SealError(
                "a Discord token in the database was sealed with another key"
                " (MJCORE_ACCOUNT_KEY changed?)"
            ) from None

    def __repr__(self) -> str:
        return "Sealer(key='***')"

"""JWTs for the image API: HS256 only, expiry enforced, algorithms pinned."""

from __future__ import annotations

from datetime import timedelta

import jwt
from attrs import field, frozen

from mjcore.accounts import Account
from mjcore.clock import Clock

ALGORITHM = "HS256"


@frozen
class Claim:
    account_id: int
    version: int


class InvalidToken(Exception):
    """Forged, malformed, of another algorithm, or expired."""


@frozen
class Tokens:
    secret: str = field(repr=False)
    ttl_s: int
    clock: Clock

    def issue(self, account: Account) -> str:
        now = self.clock()
        claims = {
            "sub": str(account.id),
            "ver": account.token_version,
            "name": account.user_name,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.ttl_s)).timestamp()),
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Claim:
        """Whom the token was issued to, and under which token version; else
        :class:`InvalidToken`. The caller compares the version with the account's."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],  # never "none", never what the header claims
                options={"require": ["sub", "exp", "iat", "ver"], "verify_exp": False},
            )
            expires, subject, version = int(claims["exp"]), str(claims["sub"]), claims["ver"]
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
            raise InvalidToken(type(exc).__name__) from None
        if expires <= self.clock().timestamp():  # our clock, so tests can move it
            raise InvalidToken("expired")
        if not subject.isdigit() or len(subject) > 19 or type(version) is not int:
            raise InvalidToken("bad subject")
        return Claim(int(subject), version)

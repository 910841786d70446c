"""JWTs for the image API: HS256 only, expiry enforced, algorithms pinned."""

from __future__ import annotations

from datetime import timedelta

import jwt
from attrs import field, frozen

from mjcore.accounts import Account
from mjcore.clock import Clock

ALGORITHM = "HS256"


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
            "name": account.user_name,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.ttl_s)).timestamp()),
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> int:
        """The account id the token was issued to; :class:`InvalidToken` otherwise."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],  # never "none", never what the header claims
                options={"require": ["sub", "exp", "iat"], "verify_exp": False},
            )
            expires, subject = int(claims["exp"]), str(claims["sub"])
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken(type(exc).__name__) from None
        if expires <= self.clock().timestamp():  # our clock, so tests can move it
            raise InvalidToken("expired")
        if not subject.isdigit():
            raise InvalidToken("bad subject")
        return int(subject)

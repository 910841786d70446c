"""Password hashing with scrypt (memory-hard, stdlib) and a per-user salt."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

from attrs import define, field

from .errors import WeakPassword
from .limits import Text

MIN_LENGTH = 8
MAX_LENGTH = 1024  # hashing cost must not be the attacker's choice
N, R, P, DKLEN = 2**14, 8, 1, 32  # 16 MiB per hash


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=dklen,
        maxmem=n * r * 256,
    )


PASSWORD = Text("password", MAX_LENGTH, MIN_LENGTH, error=WeakPassword)
GIVEN_PASSWORD = Text("password", MAX_LENGTH)  # at login: any length up to the cap


def check_password(password: str) -> str:
    return PASSWORD.check(password)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash``, all a verifier needs besides the password."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, N, R, P, DKLEN)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` result."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        if scheme != "scrypt" or len(password) > MAX_LENGTH:
            return False
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# verified against when the user does not exist, so both paths cost one scrypt
DECOY_HASH = f"scrypt${N}${R}${P}${_b64(bytes(16))}${_b64(bytes(DKLEN))}"


@define
class Hasher:
    """scrypt off the event loop: in worker threads, at most ``concurrency`` at a time.

    One hash holds a core for ~50 ms and 16 MiB; on the event loop, a burst of logins
    stalls every other request, and unbounded threads would take every core and the memory.
    """

    concurrency: int = 2
    _slots: asyncio.Semaphore = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    async def hash(self, password: str) -> str:
        """:func:`hash_password` in a worker thread."""
        async with self._slots:
            return await asyncio.to_thread(hash_password, password)

    async def verify(self, password: str, stored: str) -> bool:
        """:func:`verify_password` in a worker thread."""
        async with self._slots:
            return await asyncio.to_thread(verify_password, password, stored)

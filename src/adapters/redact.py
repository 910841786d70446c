"""What an upstream said, made safe to log: our own secrets are cut out of it."""

from __future__ import annotations

import re

_BEARER = re.compile(r"(?i)(bearer|bot)\s+[A-Za-z0-9._~+/=-]{8,}")
_MAX = 500


def redact(text: str, *secrets: str | None) -> str:
    """``text`` shortened, with every given secret and any bearer token replaced by ``***``.

    An upstream that echoes the request (headers included) must not put our keys into
    our logs, and never into what our clients see (they get our words, not upstream's).
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _BEARER.sub(r"\1 ***", text)[:_MAX]

"""The banned-word check: whole words and phrases, case-insensitive."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import BannedPrompt


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def find_banned(prompt: str, banned: Iterable[str]) -> str | None:
    """The first banned word or phrase that occurs in ``prompt`` as whole words, if any."""
    words = _words(prompt)
    joined = f" {' '.join(words)} "
    for phrase in banned:
        wanted = _words(phrase)
        if wanted and f" {' '.join(wanted)} " in joined:
            return phrase
    return None


def check_prompt(prompt: str, banned: Iterable[str]) -> None:
    """Raise :class:`BannedPrompt` if the prompt contains a banned word or phrase."""
    found = find_banned(prompt, banned)
    if found is not None:
        raise BannedPrompt(found)

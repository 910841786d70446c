"""The banned-word check: whole words and phrases, case-insensitive."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

from attrs import frozen

from .errors import BannedPrompt


@lru_cache(maxsize=1)
def default_banned_words() -> tuple[str, ...]:
    """The shipped list (``banned_words.txt``: its header says where it comes from)."""
    text = resources.files(__package__).joinpath("banned_words.txt").read_text("utf-8")
    return tuple(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def _pattern(phrase: str) -> str:
    """A phrase as a regex: its words in order, anything but letters between them; a
    leading ``-`` only matches the end of a hyphenated word (``-backed``: "open-backed")."""
    words = re.findall(r"\w+", phrase.lower())
    if not words:
        return ""
    body = r"\W+".join(re.escape(w) for w in words)
    start = r"(?<=\w)-" if phrase.lstrip().startswith("-") else r"\b"
    return f"{start}{body}\\b"


_WORD = re.compile(r"\w+")


@frozen
class _Matcher:
    regex: re.Pattern[str]
    groups: dict[str, str]  # the regex's group names -> the phrases
    first_words: frozenset[str]
    """Every phrase's first word: an ASCII prompt with none of them among its words cannot
    match, and skips the regex (one alternative per phrase, tried at every position)."""


@lru_cache(maxsize=8)
def _matcher(banned: tuple[str, ...]) -> _Matcher | None:
    patterns = {phrase: _pattern(phrase) for phrase in banned}
    patterns = {phrase: p for phrase, p in patterns.items() if p}
    if not patterns:
        return None
    groups = {f"b{i}": phrase for i, phrase in enumerate(patterns)}
    alternatives = "|".join(f"(?P<b{i}>{p})" for i, p in enumerate(patterns.values()))
    firsts = frozenset(_WORD.findall(phrase.lower())[0] for phrase in patterns)
    return _Matcher(re.compile(alternatives, re.IGNORECASE), groups, firsts)


def find_banned(prompt: str, banned: Iterable[str]) -> str | None:
    """The first banned word or phrase that occurs in ``prompt`` as whole words, if any."""
    matcher = _matcher(banned if isinstance(banned, tuple) else tuple(banned))
    if matcher is None:
        return None
    # ASCII only: there lower() is the regex's own case folding (not so for, e.g., "İ")
    if prompt.isascii() and matcher.first_words.isdisjoint(_WORD.findall(prompt.lower())):
        return None
    found = matcher.regex.search(prompt)
    return None if found is None or found.lastgroup is None else matcher.groups[found.lastgroup]


def check_prompt(prompt: str, banned: Iterable[str]) -> None:
    """Raise :class:`BannedPrompt` if the prompt contains a banned word or phrase."""
    found = find_banned(prompt, banned)
    if found is not None:
        raise BannedPrompt(found)

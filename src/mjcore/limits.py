"""Every limit on a value a caller hands in, written once.

The core checks values with these rules; the HTTP edges attach the same rule objects to
their request classes (so bodies are refused before any work) and generate the OpenAPI
schema from them. Change a number here and the check, the 400 and the document follow.
"""

from __future__ import annotations

import re
from functools import lru_cache

from attrs import frozen

from .errors import InvalidAmount, InvalidInput


def whole_number(value: object, low: int, high: int, what: str) -> int:
    """``value`` if it is an int (not a bool) from ``low`` to ``high``; else InvalidAmount."""
    if type(value) is not int or not low <= value <= high:
        raise InvalidAmount(f"{what} must be a whole number from {low} to {high}")
    return value


def parse_whole(raw: str, low: int, high: int, what: str) -> int:
    """The same rule for text (settings, query strings, command lines)."""
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    # a length cap first: int() of a 5,000-digit string is refused by Python itself
    if not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        raise InvalidAmount(f"{what} must be a whole number from {low} to {high}")
    return whole_number(int(text), low, high, what)


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _clean(value: str) -> bool:
    """No NUL and no lone surrogate (neither can be stored or encoded everywhere)."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@frozen
class Text:
    """A string a caller gives: its length, and optionally a pattern, choices or "not blank".

    Every text field has a ``max_length``: a value too long for a column is refused the
    same way on every store, before anything is written.
    """

    name: str
    max_length: int
    min_length: int = 0
    pattern: str | None = None  # the whole value must match
    choices: tuple[str, ...] | None = None
    nonblank: bool = False
    hint: str | None = None  # what a malformed value should look like, for the message
    error: type[InvalidInput] = InvalidInput

    def allows(self, value: object) -> bool:
        try:
            self.check(value)
        except InvalidInput:
            return False
        return True

    def check(self, value: object) -> str:
        """``value`` if it keeps the rule, else :attr:`error` naming the rule."""
        if not isinstance(value, str):
            raise self.error(f"{self.name} must be a string")
        if self.choices is not None:
            if value not in self.choices:
                raise self.error(f"{self.name} must be one of {', '.join(self.choices)}")
            return value
        if len(value) > self.max_length:
            raise self.error(f"{self.name} must be at most {self.max_length} characters")
        if len(value) < self.min_length:
            raise self.error(f"{self.name} must be at least {self.min_length} characters")
        if self.nonblank and not value.strip():
            raise self.error(f"{self.name} must not be empty")
        if not _clean(value):
            raise self.error(f"{self.name} must not contain NUL or lone surrogates")
        if self.pattern is not None and not _compiled(self.pattern).fullmatch(value):
            raise self.error(f"{self.name} must be {self.hint or 'well-formed'}")
        return value


@frozen
class Whole:
    """A whole number a caller gives, from ``low`` to ``high``."""

    name: str
    low: int
    high: int
    choices: tuple[int, ...] | None = None

    def check(self, value: object) -> int:
        if self.choices is not None:
            if type(value) is not int or value not in self.choices:
                shown = " or ".join(str(c) for c in self.choices)
                raise InvalidAmount(f"{self.name} must be {shown}")
            return value
        return whole_number(value, self.low, self.high, self.name)


Limit = Text | Whole

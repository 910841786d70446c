"""What each consuming action costs."""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen

from .errors import InvalidAmount

DEFAULT_PRICE = 1


def _check(action: str, price: object) -> int:
    if not isinstance(price, int) or isinstance(price, bool) or price < 0:
        raise InvalidAmount(f"price of {action!r} must be a whole number >= 0")
    return price


def _prices(value: Mapping[str, int]) -> Mapping[str, int]:
    return {action: _check(action, price) for action, price in value.items()}


def _default(value: int) -> int:
    return _check("default", value)


@frozen
class Prices:
    """The price table: named actions with their cost; anything else costs ``default``."""

    table: Mapping[str, int] = field(factory=dict, converter=_prices)
    default: int = field(default=DEFAULT_PRICE, converter=_default)

    def of(self, action: str) -> int:
        return self.table.get(action, self.default)

"""What both HTTP surfaces share: JSON bodies, strict cattrs structuring, bearer tokens."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from .bootstrap import AppServices

T = TypeVar("T")


Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """The request itself is malformed; the surface turns this into its 400 body."""


def guarded(on_error: Callable[[Exception], Response]) -> Callable[[Handler], Handler]:
    """Wrap a surface's routes so every error becomes that surface's error body."""

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return on_error(exc)

        return endpoint

    return wrap


def app_services(request: Request) -> AppServices:
    """What the lifespan built (see :func:`entrypoints.app.create_app`)."""
    services: AppServices = request.app.state.services
    return services


def _strict(kind: type) -> Any:
    def structure(value: Any, _: type) -> Any:
        if type(value) is not kind and not (kind is float and type(value) is int):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def make_converter() -> cattrs.Converter:
    """One converter per surface: no type coercion ("1" is not 1), unknown keys refused."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    for kind in (int, str, float, bool):
        converter.register_structure_hook(kind, _strict(kind))
    return converter


def lenient(converter: cattrs.Converter, cls: type) -> None:
    """Let ``cls`` accept keys it does not know (bodies we do not own, like the listener's)."""
    converter.register_structure_hook(
        cls, make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=False)
    )


def describe(exc: Exception) -> str:
    """cattrs' error tree as one readable line."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc))
    return str(exc)


def structure(converter: cattrs.Converter, data: Any, cls: type[T]) -> T:
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise BadRequest(f"invalid body: {describe(exc)}") from None


async def json_body(request: Request) -> Any:
    """The request's JSON object, or :class:`BadRequest`."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when absent or malformed."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)

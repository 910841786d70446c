"""What every HTTP surface shares: documented routes, JSON bodies, answers, bearer tokens."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import cattrs
from attrs import field, frozen
from python_multipart.multipart import parse_options_header
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from mjcore import events
from mjcore.errors import InvalidInput
from mjcore.idempotency import IDEMPOTENCY_KEY, Idempotency, KeyRecord
from mjcore.services.idempotency import Claim
from mjcore.services.jobs import JobOptions
from mjcore.webhooks import Hook

from .ratelimit import RateLimited, client_address
from .schema import BadRequest, Schema, make_converter, structure

if TYPE_CHECKING:
    from .bootstrap import AppServices

T = TypeVar("T")
log = logging.getLogger("mjcore.http")
auth_log = logging.getLogger("mjcore.auth")
Handler = Callable[[Request], Awaitable[Response]]
QUERY = make_converter(lenient=True)  # query strings are text: "20" is 20
OUT = cattrs.Converter()


@frozen
class Doc:
    """What ``/openapi.json`` says of one operation; the classes are the ones the handler
    parses and answers with, so the document cannot drift from the code."""

    summary: str
    answers: Mapping[int, Any] = field(factory=dict)  # a class, a list[...] of one, or None
    body: type | None = None  # a JSON request class
    query: type | None = None  # a class of query parameters
    security: str | None = None
    content: Schema | None = None  # a request body that is not JSON (multipart)
    produces: Schema | None = None  # a 200 body that is not JSON (images)
    idempotent: bool = False  # takes an Idempotency-Key header


class Prefix(Mount):
    """A mount whose paths may hold any character: Starlette's ``.*`` for the rest of the
    path stops at a newline (``/mj/task/%0A/fetch`` would miss the surface and get the
    app's plain-text 404 instead of the surface's own)."""

    def __init__(self, path: str, routes: Sequence[BaseRoute]) -> None:
        super().__init__(path, routes=routes)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)


class Operation(Route):
    """A route that documents itself."""

    def __init__(self, path: str, endpoint: Handler, method: str, doc: Doc) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.doc = doc


def guarded(
    on_error: Callable[[Exception], Response | None], internal: Callable[[], Response]
) -> Callable[[Handler], Handler]:
    """Wrap a surface's routes so every error becomes that surface's error body: the ones
    ``on_error`` knows, and any other as ``internal()`` (logged with its traceback)."""

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:
                known = on_error(exc)
                if known is None:
                    log.error("http.unexpected_error", exc_info=exc)
                    response = internal()
                else:
                    refused(request, exc, known.status_code)
                    response = known
            claim: Claim | None = getattr(request.state, "claim", None)
            if claim is not None:  # the first answer to an Idempotency-Key, kept for retries
                body = bytes(response.body).decode()
                await app_services(request).keys.remember(claim, response.status_code, body)
            return response

        return endpoint

    return wrap


def job_options(request: Request, account_id: int, hooks: tuple[Hook, ...] = ()) -> JobOptions:
    """The hooks a consuming request asked for, and its ``Idempotency-Key`` (bound to what
    it asked: method, path and JSON body) as a claim the service makes with the debit."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return JobOptions(hooks)
    try:
        IDEMPOTENCY_KEY.check(key)
    except InvalidInput as exc:
        raise BadRequest(str(exc)) from None
    asked = json.dumps(getattr(request.state, "json", None), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n{asked}".encode()).hexdigest()
    claim = Claim(account_id, Idempotency(key, digest))
    request.state.claim = claim
    return JobOptions(hooks, claim)


def replayed(record: KeyRecord) -> Response:
    """The first answer to an Idempotency-Key, again."""
    return Response(
        record.response_body or "",
        status_code=record.response_status or 200,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


def refused(request: Request, exc: Exception, status: int) -> None:
    """Log a refusal operators watch for: ``auth.failed`` (401/403; the reason is the
    error's name, never the credential) and ``ratelimit.refused``, with the client's
    address."""
    if isinstance(exc, RateLimited):
        fields: dict[str, Any] = {"rule": exc.rule, "retry_after_s": exc.retry_after}
        events.emit(log, logging.INFO, "ratelimit.refused", **fields, **_who(request))
    elif status in (401, 403):
        reason = _SNAKE.sub("_", type(exc).__name__).lower()
        events.emit(auth_log, logging.INFO, "auth.failed", reason=reason, **_who(request))


_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _who(request: Request) -> dict[str, Any]:
    return {"client": client_address(request), "path": request.url.path}


def app_services(request: Request) -> AppServices:
    """What the lifespan built (see :func:`entrypoints.app.create_app`)."""
    services: AppServices = request.app.state.services
    return services


class TooLarge(Exception):
    """The request body is over its limit; the surface answers 413."""


async def capped_stream(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The body as it arrives, :class:`TooLarge` as soon as it passes ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked
    body is counted chunk by chunk, so an endless one costs at most ``limit`` bytes.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body must be at most {limit} bytes")
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body must be at most {limit} bytes")
        yield chunk


FORM_OVERHEAD = 64 * 1024  # boundaries and part headers around an uploaded file


async def multipart_file(request: Request, name: str, limit: int) -> bytes:
    """The bytes of the multipart file field ``name``: :class:`TooLarge` over ``limit``,
    :class:`BadRequest` for anything but one file in a multipart form.

    The body is counted as it arrives, so a chunked upload stops at the limit instead of
    being spooled to a temporary file whole first.
    """
    content_type, _ = parse_options_header(request.headers.get("content-type", ""))
    wrong = f"the body must be multipart/form-data with a file field '{name}'"
    if content_type != b"multipart/form-data":
        raise BadRequest(wrong)
    stream = capped_stream(request, limit + FORM_OVERHEAD)
    try:
        form = await MultiPartParser(request.headers, stream, max_files=1, max_fields=4).parse()
    except MultiPartException as exc:
        raise BadRequest(f"{wrong} ({exc.message})") from None
    finally:
        await stream.aclose()
    try:
        file = form.get(name)
        if file is None or isinstance(file, str):
            raise BadRequest(wrong)
        data = await file.read(limit + 1)
    finally:
        await form.close()
    if len(data) > limit:
        raise TooLarge(f"the file must be at most {limit} bytes")
    return data


async def json_body(request: Request, limit: int | None = None) -> Any:
    """The request's JSON object (at most ``limit`` bytes, by default
    ``MJCORE_MAX_BODY_BYTES``), or :class:`BadRequest` (:class:`TooLarge` over the cap)."""
    limit = limit or app_services(request).core.settings.max_body_bytes
    raw = bytearray()
    async for chunk in capped_stream(request, limit):
        raw += chunk
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, a 5,000-digit number, nesting
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    request.state.json = data  # what an Idempotency-Key is bound to
    return data


async def body_as(request: Request, converter: cattrs.Converter, cls: type[T]) -> T:
    """The JSON body structured as ``cls`` (its limits checked), or :class:`BadRequest`."""
    return structure(converter, await json_body(request), cls)


def query_as(request: Request, cls: type[T]) -> T:
    """The query string structured as ``cls``; empty parameters count as absent."""
    given = {k: v for k, v in request.query_params.items() if v != ""}
    return structure(QUERY, given, cls, "query")


def answer(view: Any, status: int = 200) -> JSONResponse:
    """A response class instance as its JSON body."""
    return JSONResponse(OUT.unstructure(view), status_code=status)


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when absent or malformed."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token

"""OpenAI-style image generation (``/v1/images/generations``, ``/v1/models``) on Fireworks.

What the official ``openai`` client sends and reads; errors in OpenAI's
``{"error": {"message", "type", "param", "code"}}`` with its statuses, so the client raises
its documented exceptions (401 ``AuthenticationError``, 429 ``RateLimitError``…).
"""

from __future__ import annotations

import base64
from typing import Literal

from attrs import define
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from mjcore.accounts import Account
from mjcore.errors import (
    AuthError,
    ContentFiltered,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    ProviderError,
    ProviderNotConfigured,
    ProviderTimeout,
)
from mjcore.limits import Text
from mjcore.ports import ImageRequest
from mjcore.services import images
from mjcore.services.images import COUNT, Generated, aspect_ratio_of

from .http import Doc, Operation, TooLarge, answer, app_services, bearer_token, body_as, guarded
from .schema import BadRequest, make_converter, rule

CONVERTER = make_converter(lenient=False)
SIZE = Text(
    "size", 11, pattern=r"auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4}", hint="WIDTHxHEIGHT or auto"
)
RESPONSE_FORMAT = Text("response_format", 8, choices=("url", "b64_json"))
MODEL = Text("model", 128, 1)
USER = Text("user", 256)
OPTION = Text("option", 32)  # quality, style, background, moderation: accepted, not used


class NotAuthenticated(Exception):
    pass


class UnknownModel(NotFound):
    pass


@define(kw_only=True)
class ImagesIn:
    """OpenAI's image generation request (strict: an unknown key is a 400, as OpenAI's)."""

    prompt: str = rule(images.PROMPT)
    model: str | None = rule(MODEL, None)
    n: int = rule(COUNT, 1)
    size: str | None = rule(SIZE, None)
    response_format: str = rule(RESPONSE_FORMAT, "url")
    output_format: str | None = rule(images.OUTPUT_FORMAT, None)
    user: str | None = rule(USER, None)
    quality: str | None = rule(OPTION, None)
    style: str | None = rule(OPTION, None)
    background: str | None = rule(OPTION, None)
    moderation: str | None = rule(OPTION, None)


@define
class ImageData:
    url: str | None
    b64_json: str | None
    revised_prompt: str | None


@define
class ImagesOut:
    created: int
    data: list[ImageData]


@define
class Model:
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


@define
class ModelList:
    object: Literal["list"]
    data: list[Model]


@define
class ErrorBody:
    message: str
    type: str
    param: str | None
    code: str | None


@define
class OpenAIError:
    error: ErrorBody


def _error(
    status: int, message: str, kind: str, code: str | None = None, **headers: str
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers or None)


def error_response(exc: Exception) -> Response | None:
    """The one mapping from errors to OpenAI's error bodies and statuses."""
    match exc:
        case NotAuthenticated() | AuthError():
            message = "Incorrect API key provided: give an app key as Authorization: Bearer."
            return _error(401, message, "invalid_request_error", "invalid_api_key")
        case InsufficientCredits():
            message = "You exceeded your current quota: not enough credits."
            # the client retries a 429 unless told not to: more credit will not come by waiting
            no_retry = {"x-should-retry": "false"}
            return _error(429, message, "insufficient_quota", "insufficient_quota", **no_retry)
        case UnknownModel():
            return _error(404, str(exc), "invalid_request_error", "model_not_found")
        case ContentFiltered():
            return _error(400, str(exc), "invalid_request_error", "content_policy_violation")
        case BadRequest() | InvalidInput():
            return _error(400, str(exc), "invalid_request_error", "invalid_value")
        case TooLarge():
            return _error(413, str(exc), "invalid_request_error")
        case ProviderNotConfigured():
            return _error(503, "image generation is not available on this server", "server_error")
        case ProviderTimeout():
            return _error(504, str(exc), "server_error", "upstream_timeout")
        case ProviderError():
            return _error(502, str(exc), "server_error", "upstream_error")
    return None


endpoint = guarded(error_response, lambda: _error(500, "internal error", "server_error"))


async def caller(request: Request) -> Account:
    token = bearer_token(request)
    if token is None:
        raise NotAuthenticated()
    return await app_services(request).accounts.authenticate_key(token)


def _configured(request: Request) -> list[str]:
    """The image models this server generates with (none without Fireworks credentials)."""
    services = app_services(request)
    return [services.core.settings.fireworks_model] if services.images.available else []


def _size(size: str | None) -> str:
    if size is None or size == "auto":
        return "1:1"
    width, height = (int(side) for side in size.split("x"))
    return aspect_ratio_of(width, height)


async def generations(request: Request) -> Response:
    account = await caller(request)  # a bad key is a 401 before the body is looked at
    body = await body_as(request, CONVERTER, ImagesIn)
    models = _configured(request)
    if body.model is not None and models and body.model not in models:
        raise UnknownModel(f"The model `{body.model}` does not exist; this server has {models}.")
    asked = ImageRequest(body.prompt, _size(body.size), body.output_format or "png")
    made = await app_services(request).images.generate_many(account.id, asked, body.n)
    data = [_image(one, body.response_format) for one in made if isinstance(one, Generated)]
    created = min(
        int(one.task.created_at.timestamp()) for one in made if isinstance(one, Generated)
    )
    return answer(ImagesOut(created, data))


def _image(made: Generated, response_format: str) -> ImageData:
    if response_format == "b64_json":
        return ImageData(None, base64.b64encode(made.data).decode(), None)
    return ImageData(made.task.image_url, None, None)


async def models(request: Request) -> Response:
    await caller(request)
    return answer(
        ModelList("list", [Model(m, "model", 0, "fireworks") for m in _configured(request)])
    )


ERRORS = {400: OpenAIError, 401: OpenAIError}


def openai_routes() -> list[BaseRoute]:
    generate = Operation(
        "/v1/images/generations",
        endpoint(generations),
        "POST",
        Doc(
            "Generate n images with Fireworks (cost 1 each; a failed image is refunded)",
            ERRORS
            | {
                200: ImagesOut,
                404: OpenAIError,
                429: OpenAIError,
                502: OpenAIError,
                503: OpenAIError,
                504: OpenAIError,
            },
            body=ImagesIn,
            security="appKey",
        ),
    )
    listed = Operation(
        "/v1/models",
        endpoint(models),
        "GET",
        Doc("The image models configured", {200: ModelList, 401: OpenAIError}, security="appKey"),
    )
    return [generate, listed]

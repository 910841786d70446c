"""The Midjourney trigger API (``/v1/api/trigger``): thin routes, one error mapper."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from adapters.images import EXTENSIONS, sniff
from mjcore.accounts import Account
from mjcore.errors import (
    AccountUnavailable,
    BannedPrompt,
    InsufficientCredits,
    InvalidAppKey,
    InvalidInput,
    NotFound,
    ProviderError,
    QueueFull,
)
from mjcore.midjourney import MjAction
from mjcore.services import accounts, tasks
from mjcore.tasks import TaskStatus

from .http import (
    BadRequest,
    Handler,
    app_services,
    bearer_token,
    guarded,
    json_body,
    query_int,
    structure,
)
from .trigger_schema import (
    ButtonIn,
    DescribeIn,
    EventIn,
    ImagineIn,
    MessageIn,
    ReleaseIn,
    accepted_view,
    check_imagine,
    make_trigger_converter,
    parent_of,
    task_view,
    to_event,
)

log = logging.getLogger("mjcore.trigger")
CONVERTER = make_trigger_converter()
PARAMS_ERROR, BANNED_ERROR, QUEUE_FULL_ERROR, PROVIDER_ERROR = 13, 14, 15, 16


class NotAuthenticated(Exception):
    pass


class CallbackForbidden(Exception):
    pass


class TooLarge(Exception):
    pass


def _detail(status: int, detail: str, code: int | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if code is not None:
        body["code"] = code
    return JSONResponse(body | extra, status_code=status)


def error_response(exc: Exception) -> JSONResponse:
    """The one mapping from errors to this surface's ``{"detail": ...}`` bodies."""
    match exc:
        case NotAuthenticated():
            return _detail(401, "Not authenticated")
        case InvalidAppKey():
            return _detail(403, "Invalid token or expired token.")
        case AccountUnavailable():
            return _detail(403, "User not found.")
        case InsufficientCredits():
            return _detail(429, "Token limit exceeded. Please contact administrator.")
        case BannedPrompt():
            return _detail(400, str(exc), BANNED_ERROR)
        case QueueFull():
            return _detail(503, "Task queue is full.", QUEUE_FULL_ERROR)
        case NotFound():
            return _detail(404, "Task not found.")
        case BadRequest() | InvalidInput():
            return _detail(400, str(exc), PARAMS_ERROR)
        case TooLarge():
            return _detail(413, str(exc), PARAMS_ERROR)
        case CallbackForbidden():
            return _detail(403, "Invalid callback secret.")
        case ProviderError():
            return _detail(502, str(exc), PROVIDER_ERROR)
    log.exception("unexpected error", exc_info=exc)
    return _detail(500, "Internal server error.")


endpoint = guarded(error_response)


async def caller(request: Request) -> Account:
    token = bearer_token(request)
    if token is None:
        raise NotAuthenticated()
    return await accounts.authenticate_key(app_services(request).core.store, token)


def _accepted(task: Any) -> JSONResponse:
    if task.status is TaskStatus.FAILURE:  # Discord refused at once: refunded, slot freed
        return _detail(
            502,
            task.fail_reason or "the provider refused the job",
            PROVIDER_ERROR,
            task_id=task.task_id,
            trigger_id=task.trigger_id,
        )
    return JSONResponse(accepted_view(task))


async def imagine(request: Request) -> Response:
    account = await caller(request)
    body = check_imagine(structure(CONVERTER, await json_body(request), ImagineIn))
    mj = app_services(request).midjourney
    return _accepted(await mj.imagine(account.id, body.prompt, body.picurl))


def button(action: MjAction) -> Handler:
    async def press(request: Request) -> Response:
        account = await caller(request)
        body = structure(CONVERTER, await json_body(request), ButtonIn)
        parent, index = parent_of(body, action)
        mj = app_services(request).midjourney
        task = await mj.press(
            account.id, action, parent, index=index, direction=body.direction, zoomout=body.zoomout
        )
        return _accepted(task)

    return press


async def describe(request: Request) -> Response:
    account = await caller(request)
    body = structure(CONVERTER, await json_body(request), DescribeIn)
    mj = app_services(request).midjourney
    return _accepted(await mj.describe(account.id, body.upload_filename, body.trigger_id))


async def upload(request: Request) -> Response:
    await caller(request)
    limit = app_services(request).core.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise TooLarge(f"the file must be at most {limit} bytes")
    try:
        async with request.form(max_files=1, max_fields=4) as form:
            file = form.get("file")
            if file is None or isinstance(file, str):
                raise BadRequest("send the image as the multipart field 'file'")
            data = await file.read(limit + 1)
    except HTTPException as exc:  # Starlette's verdict on a malformed multipart body
        raise BadRequest(
            f"the body must be multipart/form-data with a 'file' ({exc.detail})"
        ) from None
    if len(data) > limit:
        raise TooLarge(f"the file must be at most {limit} bytes")
    kind = sniff(data)
    if kind is None:
        raise BadRequest("the file must be a PNG, JPEG, WebP or GIF image")
    result = await app_services(request).midjourney.upload(data, kind, EXTENSIONS[kind])
    return JSONResponse(
        {
            "message": "success",
            "upload_filename": result.upload.upload_filename,
            "upload_url": result.upload.upload_url,
            "trigger_id": result.trigger_id,
        }
    )


async def message(request: Request) -> Response:
    await caller(request)
    body = structure(CONVERTER, await json_body(request), MessageIn)
    picurl = await app_services(request).midjourney.send_message(body.upload_filename)
    return JSONResponse({"message": "success", "picurl": picurl})


async def release(request: Request) -> Response:
    account = await caller(request)
    body = structure(CONVERTER, await json_body(request), ReleaseIn)
    freed = await app_services(request).midjourney.release(account.id, body.trigger_id)
    return JSONResponse(
        {"message": "success", "trigger_id": body.trigger_id, "trigger_type": "", "released": freed}
    )


async def get_task(request: Request) -> Response:
    account = await caller(request)
    store = app_services(request).core.store
    found = await tasks.get_task(store, request.path_params["task_id"], account_id=account.id)
    return JSONResponse(task_view(found))


async def list_tasks(request: Request) -> Response:
    account = await caller(request)
    raw_status = request.query_params.get("status") or None
    try:
        status = None if raw_status is None else TaskStatus(raw_status.upper())
    except ValueError:
        raise BadRequest(f"status must be one of {', '.join(TaskStatus)}") from None
    limit = query_int(request, "limit", 20, 1, tasks.MAX_PAGE)
    offset = query_int(request, "offset", 0, 0, 10**9)
    page = await tasks.list_tasks(
        app_services(request).core.store, account.id, status=status, limit=limit, offset=offset
    )
    return JSONResponse(
        {"success": True, "data": [task_view(t) for t in page.tasks], "total": page.total}
    )


async def callback(request: Request) -> Response:
    secret = app_services(request).core.settings.callback_secret
    if secret is not None:
        given = request.query_params.get("secret") or request.headers.get("x-callback-secret", "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            raise CallbackForbidden()
    event = to_event(structure(CONVERTER, await json_body(request), EventIn))
    if event is None:
        return JSONResponse({"message": "ignored"})
    handled = await app_services(request).midjourney.handle(event)
    return JSONResponse({"message": handled.value})


async def not_found(request: Request) -> Response:
    return _detail(404, "Not Found")


def trigger_routes() -> BaseRoute:
    post = ["POST"]
    routes = [
        Route("/imagine", endpoint(imagine), methods=post),
        *(
            Route(f"/{action.value}", endpoint(button(action)), methods=post)
            for action in MjAction
            if action.is_button
        ),
        Route("/describe", endpoint(describe), methods=post),
        Route("/upload", endpoint(upload), methods=post),
        Route("/message", endpoint(message), methods=post),
        Route("/queue/release", endpoint(release), methods=post),
        Route("/task/{task_id}", endpoint(get_task), methods=["GET"]),
        Route("/tasks", endpoint(list_tasks), methods=["GET"]),
        Route("/midjourney/result", endpoint(callback), methods=post),
        Route("/{rest:path}", endpoint(not_found)),
    ]
    return Mount("/v1/api/trigger", routes=routes)

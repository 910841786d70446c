"""The Midjourney trigger API (``/v1/api/trigger``): parse, one service call, answer."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mjcore.accounts import Account
from mjcore.discord_accounts import AccountGone, NoAccountAvailable
from mjcore.errors import (
    AccountUnavailable,
    BannedPrompt,
    InsufficientCredits,
    InvalidAppKey,
    InvalidInput,
    NotFound,
    ProviderError,
    ProviderNotConfigured,
    QueueFull,
)
from mjcore.idempotency import IdempotencyInProgress, IdempotencyMismatch, Replay
from mjcore.media import EXTENSIONS, sniff
from mjcore.midjourney import MjAction
from mjcore.tasks import Task, TaskStatus

from .http import (
    Doc,
    Handler,
    Operation,
    Prefix,
    TooLarge,
    answer,
    app_services,
    bearer_token,
    body_as,
    guarded,
    job_options,
    multipart_file,
    query_as,
    replayed,
)
from .ratelimit import RateLimited, Rule
from .schema import BadRequest
from .trigger_schema import (
    BUTTON_BODIES,
    CONVERTER,
    Accepted,
    DescribeIn,
    Detail,
    EventIn,
    EventOut,
    GridIn,
    ImagineIn,
    MessageIn,
    MessageOut,
    QueueOut,
    ReleaseIn,
    ReleaseOut,
    ResultOut,
    TaskList,
    TaskOut,
    TasksQuery,
    UploadOut,
    accepted_view,
    queue_view,
    result_view,
    task_view,
)

PARAMS_ERROR, BANNED_ERROR, QUEUE_FULL_ERROR, PROVIDER_ERROR, RATE_LIMITED = 13, 14, 15, 16, 17
IDEMPOTENCY_ERROR = 18  # an Idempotency-Key reused for another request, or still running


class NotAuthenticated(Exception):
    pass


class CallbackForbidden(Exception):
    pass


class CallbackDisabled(Exception):
    """No callback secret is configured: the HTTP callback does not exist."""


def _detail(
    status: int,
    detail: str,
    code: int | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if code is not None:
        body["code"] = code
    return JSONResponse(body | extra, status_code=status, headers=headers)


def error_response(exc: Exception) -> Response | None:
    """The one mapping from errors to this surface's ``{"detail": ...}`` bodies."""
    match exc:
        case Replay():
            return replayed(exc.record)
        case IdempotencyMismatch():
            return _detail(422, str(exc), IDEMPOTENCY_ERROR)
        case IdempotencyInProgress():
            return _detail(409, str(exc), IDEMPOTENCY_ERROR)
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
        case NotFound() | CallbackDisabled():
            return _detail(404, "Task not found." if isinstance(exc, NotFound) else "Not Found")
        case BadRequest() | InvalidInput():
            return _detail(400, str(exc), PARAMS_ERROR)
        case TooLarge():
            return _detail(413, str(exc), PARAMS_ERROR)
        case RateLimited():
            retry = {"Retry-After": str(exc.retry_after)}
            return _detail(429, f"Too many requests: {exc}.", RATE_LIMITED, retry)
        case CallbackForbidden():
            return _detail(403, "Invalid callback secret.")
        case NoAccountAvailable():
            return _detail(503, "No Discord account is available right now.", PROVIDER_ERROR)
        case ProviderNotConfigured():
            return _detail(503, "Midjourney is not available on this server.", PROVIDER_ERROR)
        case AccountGone():
            return _detail(409, f"{str(exc).capitalize()}.", PROVIDER_ERROR)
        case ProviderError():
            return _detail(502, str(exc), PROVIDER_ERROR)
    return None


endpoint = guarded(error_response, lambda: _detail(500, "Internal server error."))


def _app_key(request: Request) -> str:
    token = bearer_token(request)
    if token is None:
        raise NotAuthenticated()
    return token


async def caller(request: Request) -> Account:
    return await app_services(request).accounts.authenticate_key(_app_key(request))


def callback_secret_given(request: Request) -> bool:
    """Is the listener's callback secret on this request? (404 if none is configured.)"""
    secret = app_services(request).core.settings.callback_secret
    if secret is None:
        raise CallbackDisabled()
    given = request.query_params.get("secret") or request.headers.get("x-callback-secret")
    if given is None:
        return False
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise CallbackForbidden()
    return True


def _accepted(task: Task) -> Response:
    if task.status is TaskStatus.FAILURE:  # Discord refused at once: refunded, slot freed
        return _detail(
            502,
            task.fail_reason or "the provider refused the job",
            PROVIDER_ERROR,
            task_id=task.task_id,
            trigger_id=task.trigger_id,
        )
    return answer(accepted_view(task))


async def imagine(request: Request) -> Response:
    account = await caller(request)
    body = await body_as(request, CONVERTER, ImagineIn)
    options = job_options(request, account.id, body.hooks())
    mj = app_services(request).midjourney
    return _accepted(await mj.imagine(account.id, body.prompt, body.picurl, options))


def button(action: MjAction, body_class: type[GridIn]) -> Handler:
    async def press(request: Request) -> Response:
        account = await caller(request)
        body = await body_as(request, CONVERTER, body_class)
        task = await app_services(request).midjourney.press(
            account.id,
            action,
            body.parent(),
            index=getattr(body, "index", 1),
            direction=getattr(body, "direction", None),
            zoomout=getattr(body, "zoomout", None),
            options=job_options(request, account.id, body.hooks()),
        )
        return _accepted(task)

    return press


async def describe(request: Request) -> Response:
    account = await caller(request)
    body = await body_as(request, CONVERTER, DescribeIn)
    options = job_options(request, account.id, body.hooks())
    mj = app_services(request).midjourney
    return _accepted(await mj.describe(account.id, body.upload_filename, body.trigger_id, options))


async def upload(request: Request) -> Response:
    account = await caller(request)
    services = app_services(request)
    await services.limits.free_call(Rule.UPLOAD, account.id)
    data = await multipart_file(request, "file", services.core.settings.max_upload_bytes)
    kind = sniff(data)
    if kind is None:
        raise BadRequest("the file must be a PNG, JPEG, WebP or GIF image")
    mj = app_services(request).midjourney
    result = await mj.upload(account.id, data, kind, EXTENSIONS[kind])
    return answer(
        UploadOut(
            "success", result.upload.upload_filename, result.upload.upload_url, result.trigger_id
        )
    )


async def message(request: Request) -> Response:
    account = await caller(request)
    await app_services(request).limits.free_call(Rule.MESSAGE, account.id)
    body = await body_as(request, CONVERTER, MessageIn)
    picurl = await app_services(request).midjourney.send_message(account.id, body.upload_filename)
    return answer(MessageOut("success", picurl))


async def release(request: Request) -> Response:
    body = await body_as(request, CONVERTER, ReleaseIn)
    mj = app_services(request).midjourney
    if _has_secret(request):  # the listener or the operator: any job's slot
        freed = await mj.release(body.trigger_id)
    elif bearer_token(request) is not None:  # a user: only their own jobs that have ended
        freed = await mj.release(body.trigger_id, (await caller(request)).id)
    else:  # yokonsan's listener, keyless, when a job ends: its end already freed the slot
        freed = 0
    return answer(ReleaseOut("success", body.trigger_id, "", freed))


def _has_secret(request: Request) -> bool:
    try:
        return callback_secret_given(request)
    except CallbackDisabled:
        return False


async def _callers_task(request: Request) -> Task:
    """The caller's task named in the path: their key and the task in one read."""
    accounts = app_services(request).accounts
    return await accounts.task_by_key(_app_key(request), request.path_params["task_id"])


async def get_task(request: Request) -> Response:
    return answer(task_view(await _callers_task(request)))


async def get_result(request: Request) -> Response:
    return answer(result_view(await _callers_task(request)))


async def list_tasks(request: Request) -> Response:
    account = await caller(request)
    query = query_as(request, TasksQuery)
    mj = app_services(request).midjourney
    page = await mj.tasks(account.id, query.status, query.limit, query.offset)
    return answer(TaskList(True, [task_view(t) for t in page.tasks], page.total))


async def queue_status(request: Request) -> Response:
    account = await caller(request)
    return answer(queue_view(await app_services(request).midjourney.queue_status(account.id)))


async def callback(request: Request) -> Response:
    if not callback_secret_given(request):
        raise CallbackForbidden()
    event = (await body_as(request, CONVERTER, EventIn)).event()
    if event is None:
        return answer(EventOut("ignored"))
    handled = await app_services(request).midjourney.handle(event)
    return answer(EventOut(handled.value))


async def not_found(request: Request) -> Response:
    return _detail(404, "Not Found")


KEY_ERRORS: dict[int, type | None] = {400: Detail, 401: Detail, 403: Detail}
CONSUMING: dict[int, type | None] = KEY_ERRORS | {
    200: Accepted,
    404: Detail,
    409: Detail,  # an Idempotency-Key still running; a follow-up whose account is down
    422: Detail,  # this Idempotency-Key was used for another request
    429: Detail,
    502: Detail,
    503: Detail,
}
UPLOAD_FORM = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"],
        }
    }
}


def _post(path: str, handler: Handler, doc: Doc) -> Route:
    return Operation(path, endpoint(handler), "POST", doc)


def _get(path: str, handler: Handler, doc: Doc) -> Route:
    return Operation(path, endpoint(handler), "GET", doc)


def trigger_routes() -> BaseRoute:
    key = "appKey"
    buttons = [
        _post(
            f"/{action.value}",
            button(action, BUTTON_BODIES.get(action, GridIn)),
            Doc(
                f"{action.trigger_type} on a finished grid or image (cost 1)",
                CONSUMING,
                body=BUTTON_BODIES.get(action, GridIn),
                security=key,
                idempotent=True,
            ),
        )
        for action in MjAction
        if action.is_button
    ]
    routes = [
        _post(
            "/imagine",
            imagine,
            Doc(
                "Generate a grid (cost 1)", CONSUMING, body=ImagineIn, security=key, idempotent=True
            ),
        ),
        *buttons,
        _post(
            "/describe",
            describe,
            Doc(
                "Describe an uploaded image (cost 1)",
                CONSUMING,
                body=DescribeIn,
                security=key,
                idempotent=True,
            ),
        ),
        _post(
            "/upload",
            upload,
            Doc(
                "Upload an image to Discord (free; rate-limited per app key)",
                KEY_ERRORS | {200: UploadOut, 413: Detail, 429: Detail, 502: Detail, 503: Detail},
                content=UPLOAD_FORM,
                security=key,
            ),
        ),
        _post(
            "/message",
            message,
            Doc(
                "Post an upload as a message; its URL can be an imagine picurl"
                " (free; rate-limited per app key)",
                KEY_ERRORS
                | {200: MessageOut, 404: Detail, 409: Detail, 429: Detail, 502: Detail}
                | {503: Detail},
                body=MessageIn,
                security=key,
            ),
        ),
        _post(
            "/queue/release",
            release,
            Doc(
                "Free queue slots of a trigger's ended jobs (free, idempotent; without a key:"
                " a no-op for yokonsan's listener)",
                KEY_ERRORS | {200: ReleaseOut, 404: Detail},
                body=ReleaseIn,
                security=key,
            ),
        ),
        _get(
            "/task/{task_id}",
            get_task,
            Doc(
                "One of the caller's tasks (free)",
                KEY_ERRORS | {200: TaskOut, 404: Detail},
                security=key,
            ),
        ),
        _get(
            "/result/{task_id}",
            get_result,
            Doc(
                "niehao's result of one of the caller's tasks (free)",
                KEY_ERRORS | {200: ResultOut, 404: Detail},
                security=key,
            ),
        ),
        _get(
            "/tasks",
            list_tasks,
            Doc(
                "The caller's tasks, newest first (free)",
                KEY_ERRORS | {200: TaskList},
                query=TasksQuery,
                security=key,
            ),
        ),
        _get(
            "/queue/status",
            queue_status,
            Doc(
                "The queue's limits and the caller's jobs in it (free)",
                KEY_ERRORS | {200: QueueOut},
                security=key,
            ),
        ),
        _post(
            "/midjourney/result",
            callback,
            Doc(
                "The listener bot's event (the callback secret; 404 unless one is configured)",
                {200: EventOut, 400: Detail, 403: Detail, 404: Detail},
                body=EventIn,
                security="callbackSecret",
            ),
        ),
        Route("/{rest:path}", endpoint(not_found)),
    ]
    return Prefix("/v1/api/trigger", routes)

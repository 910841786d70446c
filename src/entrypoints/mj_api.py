"""midjourney-proxy's ``/mj`` API on our accounts, ledger, queue and Discord pool.

novicezk answers every submission with HTTP 200 and a ``code`` (1 submitted, 22 queued,
3 not found, 4 invalid, 9 failed, 23 queue full, 24 banned prompt); statuses other than
200 are for what novicezk has no code for (a missing key, no credit, a body too large).
"""

from __future__ import annotations

from typing import Any, TypeVar

from attrs import evolve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mjcore.accounts import Account
from mjcore.discord_accounts import AccountGone, NoAccountAvailable
from mjcore.errors import (
    AuthError,
    BannedPrompt,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    ProviderError,
    ProviderNotConfigured,
    QueueFull,
)
from mjcore.idempotency import IdempotencyInProgress, IdempotencyMismatch, Replay
from mjcore.midjourney import MjAction, buttons, parse_button
from mjcore.services.jobs import JobOptions
from mjcore.services.midjourney import ParentRef
from mjcore.tasks import Provider, Task, TaskStatus

from .http import (
    FORM_OVERHEAD,
    Doc,
    Handler,
    Operation,
    Prefix,
    TooLarge,
    answer,
    app_services,
    bearer_token,
    guarded,
    job_options,
    json_body,
    replayed,
)
from .mj_schema import (
    CONVERTER,
    MAX_IMAGES,
    Code,
    MjActionIn,
    MjBlendIn,
    MjChangeIn,
    MjConditionIn,
    MjDescribeIn,
    MjImagineIn,
    MjModalIn,
    MjSeedOut,
    MjSimpleChangeIn,
    MjSubmitIn,
    MjSubmitOut,
    MjTask,
    Refused,
    accepted,
    change_of,
    picture,
    simple_change,
    task_view,
)
from .ratelimit import RateLimited, Rule
from .schema import BadRequest, structure

S = TypeVar("S", bound=MjSubmitIn)
IDS = 100  # task ids one list-by-condition may ask for
GRIDS = frozenset(MjAction) - {MjAction.UPSCALE, MjAction.DESCRIBE}  # what /change acts on


class NotAuthenticated(Exception):
    pass


class NoSuchTask(Exception):
    """A task the caller looked for by id is not theirs, or not a Midjourney one (404)."""


def _out(
    status: int,
    code: int,
    description: str,
    result: str | None = None,
    headers: dict[str, str] | None = None,
    **properties: Any,
) -> JSONResponse:
    body = {"code": int(code), "description": description, "result": result}
    return JSONResponse(body | {"properties": properties}, status_code=status, headers=headers)


def error_response(exc: Exception) -> Response | None:
    """The one mapping from errors to this surface's ``SubmitResultVO`` bodies."""
    match exc:
        case Replay():
            return replayed(exc.record)
        case IdempotencyMismatch():
            return _out(422, Code.VALIDATION_ERROR, str(exc))
        case IdempotencyInProgress():
            return _out(409, Code.VALIDATION_ERROR, str(exc))
        case Refused():
            return _out(200, exc.code, exc.description, **exc.properties)
        case NotAuthenticated() | AuthError():
            hint = "give an app key as mj-api-secret or Authorization: Bearer"
            return _out(401, Code.VALIDATION_ERROR, f"Unauthorized: {hint}")
        case NoSuchTask():
            return _out(404, Code.NOT_FOUND, "task not found")
        case InsufficientCredits():
            return _out(429, Code.VALIDATION_ERROR, "insufficient credits")
        case BannedPrompt():
            return _out(200, Code.BANNED_PROMPT, "banned prompt", bannedWord=exc.phrase)
        case QueueFull():
            return _out(200, Code.QUEUE_REJECTED, "queue full, please try again later")
        case NotFound():
            return _out(200, Code.NOT_FOUND, "task not found or expired")
        case BadRequest():
            return _out(400, Code.VALIDATION_ERROR, str(exc))
        case InvalidInput():
            return _out(200, Code.VALIDATION_ERROR, str(exc))
        case TooLarge():
            return _out(413, Code.VALIDATION_ERROR, str(exc))
        case RateLimited():
            retry = {"Retry-After": str(exc.retry_after)}
            return _out(429, Code.VALIDATION_ERROR, f"too many requests: {exc}", None, retry)
        case NoAccountAvailable() | ProviderNotConfigured():
            return _out(200, Code.NOT_FOUND, "no available account instance")
        case AccountGone() | ProviderError():
            return _out(200, Code.FAILURE, str(exc))
    return None


endpoint = guarded(error_response, lambda: _out(500, Code.FAILURE, "internal error"))


def _key(request: Request) -> str:
    """The app key in ``mj-api-secret`` (novicezk) or the bearer token."""
    key = request.headers.get("mj-api-secret") or bearer_token(request)
    if not key:
        raise NotAuthenticated()
    return key


async def caller(request: Request) -> Account:
    """The account whose app key the request carries."""
    return await app_services(request).accounts.authenticate_key(_key(request))


async def submitted(request: Request, cls: type[S], images: bool = False) -> S:
    """The body as ``cls``; one that is no JSON object is a 400, one that is not what
    ``cls`` says is refused with code 4 (as novicezk's validation does). A body carrying
    base64 images may be as large as one upload's worth of them (``MAX_UPLOAD_BYTES``)."""
    settings = app_services(request).core.settings
    base64_upload = settings.max_upload_bytes * 4 // 3 + FORM_OVERHEAD
    data = await json_body(request, max(settings.max_body_bytes, base64_upload * images))
    try:
        body = structure(CONVERTER, data, cls)
    except BadRequest as exc:
        raise Refused(Code.VALIDATION_ERROR, str(exc)) from None
    body.check_bot()
    return body


def _options(request: Request, account: Account, body: MjSubmitIn) -> JobOptions:
    return evolve(job_options(request, account.id, body.hooks()), state=body.state)


def _accepted(task: Task) -> Response:
    if task.status is TaskStatus.FAILURE:  # Discord refused at once: refunded, slot freed
        return _out(200, Code.FAILURE, task.fail_reason or "submit failed", task.task_id)
    return answer(accepted(task))


async def imagine(request: Request) -> Response:
    account = await caller(request)
    body = await submitted(request, MjImagineIn, images=True)
    given = [*(body.base64Array or []), *([body.base64] if body.base64 else [])]
    if len(given) > MAX_IMAGES:
        raise Refused(Code.VALIDATION_ERROR, f"base64Array: at most {MAX_IMAGES} images")
    services = app_services(request)
    images = [picture(one, services.core.settings.max_upload_bytes) for one in given]
    for _ in images:  # each is an upload to Discord, counted as /upload's are
        await services.limits.free_call(Rule.UPLOAD, account.id)
    options = _options(request, account, body)
    mj = services.midjourney
    return _accepted(await mj.imagine(account.id, body.prompt.strip(), None, options, images))


async def _parent(request: Request, account: Account, task_id: str) -> Task:
    try:
        task = await _own(request, account, task_id)
    except NoSuchTask:
        raise Refused(Code.NOT_FOUND, "task not found or expired") from None
    if task.status is not TaskStatus.SUCCESS:
        raise Refused(Code.VALIDATION_ERROR, f"task {task_id} has not succeeded")
    return task


async def _press(
    request: Request, account: Account, body: MjSubmitIn, parent: Task, action: MjAction, **how: Any
) -> Response:
    mj = app_services(request).midjourney
    options = _options(request, account, body)
    ref = ParentRef(task_id=parent.task_id)
    return _accepted(await mj.press(account.id, action, ref, options=options, **how))


async def change(request: Request) -> Response:
    account = await caller(request)
    body = await submitted(request, MjChangeIn)
    return await _change(request, account, body, body.taskId, body.action, body.index)


async def _change(
    request: Request,
    account: Account,
    body: MjSubmitIn,
    task_id: str,
    action_name: str,
    index: int | None,
) -> Response:
    action, index = change_of(action_name, index)
    parent = await _parent(request, account, task_id)
    if MjAction(parent.action) not in GRIDS:
        raise Refused(Code.VALIDATION_ERROR, f"task {task_id} is not a grid to change")
    return await _press(request, account, body, parent, action, index=index)


async def simple(request: Request) -> Response:
    account = await caller(request)
    body = await submitted(request, MjSimpleChangeIn)
    task_id, action, index = simple_change(body.content)
    return await _change(request, account, body, task_id, action, index)


async def action(request: Request) -> Response:
    account = await caller(request)
    body = await submitted(request, MjActionIn)
    parent = await _parent(request, account, body.taskId)
    press = parse_button(body.customId)
    if press is None or body.customId not in {b.custom_id for b in buttons(parent)}:
        raise Refused(
            Code.VALIDATION_ERROR, f"customId is not a button of task {body.taskId} served here"
        )
    how = {"index": press.index, "direction": press.direction, "zoomout": press.zoomout}
    return await _press(request, account, body, parent, press.action, **how)


async def describe(request: Request) -> Response:
    account = await caller(request)
    body = await submitted(request, MjDescribeIn, images=True)
    services = app_services(request)
    await services.limits.free_call(Rule.UPLOAD, account.id)
    image = picture(body.base64, services.core.settings.max_upload_bytes)
    options = _options(request, account, body)
    return _accepted(await services.midjourney.describe_picture(account.id, image, options))


async def blend(request: Request) -> Response:
    await caller(request)
    await submitted(request, MjBlendIn, images=True)
    raise Refused(Code.VALIDATION_ERROR, "blend is not supported by this server")


async def modal(request: Request) -> Response:
    await caller(request)
    await submitted(request, MjModalIn, images=True)
    raise Refused(Code.VALIDATION_ERROR, "no action of this server waits for a modal")


def _midjourney(task: Task) -> Task:
    if task.provider is not Provider.MIDJOURNEY:
        raise NoSuchTask()
    return task


async def _own(request: Request, account: Account, task_id: str) -> Task:
    try:
        return _midjourney(await app_services(request).midjourney.task(account.id, task_id))
    except NotFound:
        raise NoSuchTask() from None


async def _by_key(request: Request) -> Task:
    """The caller's task named in the path: their key and the task in one read."""
    accounts = app_services(request).accounts
    try:
        return _midjourney(await accounts.task_by_key(_key(request), request.path_params["id"]))
    except NotFound:
        raise NoSuchTask() from None


async def fetch(request: Request) -> Response:
    return answer(task_view(await _by_key(request)))


async def image_seed(request: Request) -> Response:
    await _by_key(request)
    why = "the image seed is not available: this server does not ask Midjourney for seeds"
    return answer(MjSeedOut(Code.VALIDATION_ERROR, why, None))


async def by_condition(request: Request) -> Response:
    account = await caller(request)
    ids = structure(CONVERTER, await json_body(request), MjConditionIn).ids or []
    if len(ids) > IDS:
        raise BadRequest(f"ids: at most {IDS}")
    found = []
    for task_id in dict.fromkeys(ids):
        try:
            found.append(task_view(await _own(request, account, task_id)))
        except NoSuchTask:
            continue
    return answer(found)


async def list_all(request: Request) -> Response:
    account = await caller(request)
    page = await app_services(request).midjourney.tasks(account.id, None, 100, 0)
    return answer([task_view(t) for t in page.tasks if t.provider is Provider.MIDJOURNEY])


async def queue(request: Request) -> Response:
    account = await caller(request)
    waiting = await app_services(request).midjourney.unfinished(account.id)
    return answer([task_view(t) for t in waiting])


async def not_found(request: Request) -> Response:
    return _out(404, Code.NOT_FOUND, "Not Found")


KEY = "mjApiSecret"
ERRORS: dict[int, Any] = {400: MjSubmitOut, 401: MjSubmitOut}
SUBMIT: dict[int, Any] = ERRORS | {
    200: MjSubmitOut,
    409: MjSubmitOut,  # an Idempotency-Key still running
    422: MjSubmitOut,  # an Idempotency-Key used for another request
    429: MjSubmitOut,  # no credit, or too many images uploaded
}
TASKS: dict[int, Any] = ERRORS | {200: list[MjTask]}
ONE: dict[int, Any] = ERRORS | {404: MjSubmitOut}


def _op(method: str, path: str, handler: Handler, doc: Doc) -> Route:
    return Operation(path, endpoint(handler), method, doc)


def _submit(path: str, handler: Handler, summary: str, body: type) -> Route:
    return _op(
        "POST", path, handler, Doc(summary, SUBMIT, body=body, security=KEY, idempotent=True)
    )


def mj_routes() -> BaseRoute:
    routes = [
        _submit("/submit/imagine", imagine, "Imagine a grid (cost 1)", MjImagineIn),
        _submit("/submit/change", change, "U1-U4, V1-V4 or reroll a grid (cost 1)", MjChangeIn),
        _submit(
            "/submit/simple-change", simple, "Change by '<taskId> U1' (cost 1)", MjSimpleChangeIn
        ),
        _submit("/submit/action", action, "Press a button of a task's (cost 1)", MjActionIn),
        _submit("/submit/describe", describe, "Describe an image (cost 1)", MjDescribeIn),
        _submit("/submit/blend", blend, "Blend: not supported here (code 4)", MjBlendIn),
        _submit("/submit/modal", modal, "Modal: nothing here waits for one (code 4)", MjModalIn),
        _op(
            "GET",
            "/task/{id}/fetch",
            fetch,
            Doc("One of the caller's Midjourney tasks", ONE | {200: MjTask}, security=KEY),
        ),
        _op(
            "GET",
            "/task/{id}/image-seed",
            image_seed,
            Doc("A task's seed: not available here (code 4)", ONE | {200: MjSeedOut}, security=KEY),
        ),
        _op(
            "POST",
            "/task/list-by-condition",
            by_condition,
            Doc("The caller's tasks among ids", TASKS, body=MjConditionIn, security=KEY),
        ),
        _op(
            "GET",
            "/task/list",
            list_all,
            Doc("The caller's Midjourney tasks among its 100 newest", TASKS, security=KEY),
        ),
        _op(
            "GET",
            "/task/queue",
            queue,
            Doc("The caller's running and waiting tasks", TASKS, security=KEY),
        ),
        Route("/{rest:path}", endpoint(not_found)),
    ]
    return Prefix("/mj", routes)

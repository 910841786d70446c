"""The image API (``/api``): users with JWTs, credits, codes, Fireworks, records, admin."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from mjcore.accounts import Account
from mjcore.errors import (
    AccountUnavailable,
    BadCredentials,
    CodeAlreadyRedeemed,
    CodeExpired,
    CodeNotFound,
    ContentFiltered,
    InsufficientCredits,
    InvalidInput,
    MalformedCode,
    NotFound,
    ProviderError,
    ProviderTimeout,
    UserNameTaken,
)
from mjcore.ports import ImageRequest
from mjcore.services import codes, images, reports, users

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
from .image_schema import (
    CodesIn,
    Credentials,
    GenerateIn,
    RedeemIn,
    make_image_converter,
    record_view,
    user_view,
)
from .tokens import InvalidToken

log = logging.getLogger("mjcore.images")
CONVERTER = make_image_converter()
MAX_ADMIN_PAGE = 10_000


class Unauthorized(Exception):
    """No valid JWT, or the user it names is gone."""


class AdminUnauthorized(Exception):
    """Wrong or missing Basic credentials, or no admin configured."""


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def error_response(exc: Exception) -> JSONResponse:
    """The one mapping from errors to this surface's ``{"error": ...}`` bodies."""
    match exc:
        case Unauthorized() | AccountUnavailable():
            return _error(401, "未授权 (unauthorized)", **{"WWW-Authenticate": "Bearer"})
        case AdminUnauthorized():
            return _error(
                401, "未授权 (unauthorized)", **{"WWW-Authenticate": 'Basic realm="mjcore"'}
            )
        case BadCredentials():
            return _error(401, "用户名或密码错误 (wrong username or password)")
        case UserNameTaken():
            return _error(400, "用户名已存在 (username taken)")
        case CodeNotFound():
            return _error(400, "兑换码不存在 (unknown code)")
        case CodeAlreadyRedeemed():
            return _error(400, "兑换码已被使用 (code already used)")
        case CodeExpired():
            return _error(400, "兑换码已过期 (code expired)")
        case MalformedCode():
            return _error(400, f"兑换码格式错误 ({exc})")
        case BadRequest() | InvalidInput():
            return _error(400, f"请求参数错误 ({exc})")
        case InsufficientCredits():
            return _error(402, "积分不足 (not enough credits)")
        case ContentFiltered():
            return _error(422, f"内容被过滤 ({exc})")
        case ProviderTimeout():
            return _error(504, f"生成超时 ({exc})")
        case ProviderError():
            return _error(502, f"图片生成失败 ({exc})")
        case NotFound():
            return _error(404, "Not Found")
    log.exception("unexpected error", exc_info=exc)
    return _error(500, "服务器错误 (internal error)")


endpoint = guarded(error_response)


async def current_user(request: Request) -> Account:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized()
    services = app_services(request)
    try:
        account_id = services.tokens.verify(token)
    except InvalidToken:
        raise Unauthorized() from None
    async with services.core.store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.get(account_id)
    if account is None or not account.active:
        raise Unauthorized()
    return account


def check_admin(request: Request) -> None:
    settings = app_services(request).core.settings
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if not (settings.admin_username and settings.admin_password) or scheme.lower() != "basic":
        raise AdminUnauthorized()
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AdminUnauthorized() from None
    # both compared in constant time, always both
    good_user = hmac.compare_digest(user.encode(), settings.admin_username.encode())
    good_password = hmac.compare_digest(password.encode(), settings.admin_password.encode())
    if not (sep and good_user and good_password):
        raise AdminUnauthorized()


async def register(request: Request) -> Response:
    body = structure(CONVERTER, await json_body(request), Credentials)
    services = app_services(request)
    account = await users.register(
        services.core.store, services.core.clock, body.username, body.password
    )
    return JSONResponse({"message": "注册成功", "username": account.user_name})


async def login(request: Request) -> Response:
    body = structure(CONVERTER, await json_body(request), Credentials)
    services = app_services(request)
    account = await users.login(services.core.store, body.username, body.password)
    generated = await reports.generated_count(services.core.store, account.id)
    view = user_view(account, generated)
    return JSONResponse(
        {
            "message": "登录成功",
            "token": services.tokens.issue(account),
            "user": {k: view[k] for k in ("username", "credits", "totalGenerated")},
        }
    )


async def me(request: Request) -> Response:
    account = await current_user(request)
    generated = await reports.generated_count(app_services(request).core.store, account.id)
    return JSONResponse(user_view(account, generated))


async def redeem(request: Request) -> Response:
    account = await current_user(request)
    body = structure(CONVERTER, await json_body(request), RedeemIn)
    core = app_services(request).core
    result = await codes.redeem_code(core.store, core.clock, account.id, body.code)
    return JSONResponse(
        {"message": "兑换成功", "credits": result.credits, "totalCredits": result.balance}
    )


async def generate(request: Request) -> Response:
    account = await current_user(request)
    body = structure(CONVERTER, await json_body(request), GenerateIn)
    services = app_services(request)
    core = services.core
    asked = ImageRequest(body.prompt, body.aspect_ratio, body.output_format, body.seed)
    made = await images.generate_image(
        core.store, core.clock, core.prices, services.fireworks, services.images, account.id, asked
    )
    task = made.task
    return JSONResponse(
        {
            "message": "生成成功",
            "request_id": task.provider_ref,
            "image_url": task.image_url,
            "credits_remaining": made.credits_remaining,
            "seed": task.result.get("seed"),
            "task_id": task.task_id,
        }
    )


async def my_records(request: Request) -> Response:
    account = await current_user(request)
    limit = query_int(request, "limit", 20, 1, 100)
    found = await reports.records(app_services(request).core.store, account.id, limit)
    return JSONResponse({"records": [record_view(r) for r in found]})


async def admin_codes(request: Request) -> Response:
    check_admin(request)
    body = structure(CONVERTER, await json_body(request), CodesIn)
    core = app_services(request).core
    expires = None
    if body.expires_in_days is not None:
        if not 1 <= body.expires_in_days <= 3650:
            raise BadRequest("expires_in_days must be from 1 to 3650")
        expires = core.clock() + timedelta(days=body.expires_in_days)
    issued = await codes.issue_codes(
        core.store, core.clock, body.credits, body.count, expires_at=expires
    )
    return JSONResponse(
        {"message": "生成成功", "codes": [c.code for c in issued], "credits": body.credits}
    )


async def admin_users(request: Request) -> Response:
    check_admin(request)
    limit = query_int(request, "limit", 1000, 1, MAX_ADMIN_PAGE)
    offset = query_int(request, "offset", 0, 0, 10**9)
    found = await reports.user_summaries(app_services(request).core.store, limit, offset)
    return JSONResponse({"users": [user_view(s.account, s.generated) for s in found]})


async def admin_records(request: Request) -> Response:
    check_admin(request)
    limit = query_int(request, "limit", 50, 1, 100)
    found = await reports.records(app_services(request).core.store, None, limit)
    return JSONResponse({"records": [record_view(r) for r in found]})


async def admin_stats(request: Request) -> Response:
    check_admin(request)
    counts = await reports.stats(app_services(request).core.store)
    return JSONResponse(
        {
            "totalUsers": counts.accounts,
            "totalRecords": counts.successful_tasks,
            "totalCodes": counts.codes,
            "usedCodes": counts.used_codes,
            "totalCredits": counts.credits,
        }
    )


async def not_found(request: Request) -> Response:
    return _error(404, "Not Found")


def image_routes() -> BaseRoute:
    post, get = ["POST"], ["GET"]
    routes: list[tuple[str, Handler, list[str]]] = [
        ("/register", register, post),
        ("/login", login, post),
        ("/user", me, get),
        ("/redeem", redeem, post),
        ("/generate", generate, post),
        ("/records", my_records, get),
        ("/admin/codes", admin_codes, post),
        ("/admin/users", admin_users, get),
        ("/admin/records", admin_records, get),
        ("/admin/stats", admin_stats, get),
    ]
    return Mount(
        "/api",
        routes=[
            *(Route(path, endpoint(handler), methods=methods) for path, handler, methods in routes),
            Route("/{rest:path}", endpoint(not_found)),
        ],
    )

"""The image API (``/api``): users with JWTs, credits, codes, Fireworks, records, admin."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mjcore.accounts import Account
from mjcore.discord_accounts import ACCOUNT_NAME, AccountNameTaken, DiscordAccount, Mode, Secret
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
    ProviderNotConfigured,
    ProviderTimeout,
    UserNameTaken,
)
from mjcore.idempotency import IdempotencyInProgress, IdempotencyMismatch, Replay
from mjcore.ports import ImageRequest

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
    query_as,
    replayed,
)
from .image_schema import (
    CONVERTER,
    AccountChangeOut,
    AdminRecordsQuery,
    AdminUsersQuery,
    CodesIn,
    CodesOut,
    DeliveriesOut,
    DeliveryOut,
    DiscordAccountIn,
    DiscordAccountsOut,
    Error,
    GeneratedOut,
    GenerateIn,
    LoggedIn,
    LoginIn,
    RecordsOut,
    RecordsQuery,
    Redeemed,
    RedeemIn,
    Registered,
    RegisterIn,
    StatsOut,
    UserBrief,
    UserOut,
    UsersOut,
    WebhooksQuery,
    delivery_view,
    discord_account_view,
    record_view,
    user_view,
)
from .ratelimit import RateLimited, client_address
from .schema import BadRequest
from .settings import Settings
from .tokens import InvalidToken


class Unauthorized(Exception):
    """No valid JWT, or the user it names is gone."""


class AdminUnauthorized(Exception):
    """Wrong or missing Basic credentials, or no admin configured."""


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def error_response(exc: Exception) -> Response | None:
    """The one mapping from errors to this surface's ``{"error": ...}`` bodies."""
    match exc:
        case Replay():
            return replayed(exc.record)
        case IdempotencyMismatch():
            return _error(422, f"幂等键已用于另一个请求 ({exc})")
        case IdempotencyInProgress():
            return _error(409, f"同一幂等键的请求仍在处理 ({exc})")
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
        case AccountNameTaken():
            return _error(409, f"账号已存在 ({exc})")
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
        case TooLarge():
            return _error(413, f"请求体过大 ({exc})")
        case RateLimited():
            return _error(429, f"请求过于频繁 ({exc})", **{"Retry-After": str(exc.retry_after)})
        case InsufficientCredits():
            return _error(402, "积分不足 (not enough credits)")
        case ContentFiltered():
            return _error(422, f"内容被过滤 ({exc})")
        case ProviderTimeout():
            return _error(504, f"生成超时 ({exc})")
        case ProviderNotConfigured():
            return _error(503, "图片生成暂不可用 (image generation is not available)")
        case ProviderError():
            return _error(502, f"图片生成失败 ({exc})")
        case NotFound():
            return _error(404, "Not Found")
    return None


endpoint = guarded(error_response, lambda: _error(500, "服务器错误 (internal error)"))


async def current_user(request: Request) -> Account:
    return await account_of_token(request, bearer_token(request))


async def account_of_token(request: Request, token: str | None) -> Account:
    """The active account a JWT (a Bearer header's, or a page session's) was issued to,
    under its current token version; else :class:`Unauthorized`."""
    if token is None:
        raise Unauthorized()
    services = app_services(request)
    try:
        claim = services.tokens.verify(token)
    except InvalidToken:
        raise Unauthorized() from None
    account = await services.accounts.active(claim.account_id)
    if account is None or account.token_version != claim.version:  # a newer password or key
        raise Unauthorized()
    return account


async def check_admin(request: Request) -> None:
    """The admin's Basic credentials, or :class:`AdminUnauthorized`; an address that failed
    too often is refused (429) before its credentials are looked at."""
    services = app_services(request)
    address = client_address(request)
    await services.limits.admin_allowed(address)
    if not _admin_credentials(request, services.core.settings):
        if "authorization" in request.headers:  # a guess; a bare request is a browser's probe
            await services.limits.admin_failed(address)
        raise AdminUnauthorized()


def _admin_credentials(request: Request, settings: Settings) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(sep) and admin_matches(settings, user, password)


def admin_matches(settings: Settings, user: str, password: str) -> bool:
    """Are these the configured admin's name and password? (False when none is set.)"""
    if not (settings.admin_username and settings.admin_password):
        return False
    # both compared in constant time, always both
    good_user = hmac.compare_digest(user.encode(), settings.admin_username.encode())
    good_password = hmac.compare_digest(password.encode(), settings.admin_password.encode())
    return good_user and good_password


async def register(request: Request) -> Response:
    body = await body_as(request, CONVERTER, RegisterIn)
    services = app_services(request)
    await services.limits.register(client_address(request), body.username)
    account = await services.accounts.register(body.username, body.password)
    return answer(Registered("注册成功", account.user_name))


async def login(request: Request) -> Response:
    body = await body_as(request, CONVERTER, LoginIn)
    services = app_services(request)
    await services.limits.login(client_address(request), body.username)
    profile = await services.accounts.login(body.username, body.password)
    user = UserBrief(profile.account.user_name, profile.account.credits, profile.generated)
    return answer(LoggedIn("登录成功", services.tokens.issue(profile.account), user))


async def me(request: Request) -> Response:
    account = await current_user(request)
    return answer(user_view(await app_services(request).accounts.profile(account)))


async def redeem(request: Request) -> Response:
    account = await current_user(request)
    body = await body_as(request, CONVERTER, RedeemIn)
    options = job_options(request, account.id)
    result = await app_services(request).accounts.redeem(account.id, body.code, options)
    return answer(Redeemed("兑换成功", result.credits, result.balance))


async def generate(request: Request) -> Response:
    account = await current_user(request)
    body = await body_as(request, CONVERTER, GenerateIn)
    asked = ImageRequest(body.prompt, body.aspect_ratio, body.output_format, body.seed)
    options = job_options(request, account.id, body.hooks())
    made = await app_services(request).images.generate(account.id, asked, options)
    task = made.task
    return answer(
        GeneratedOut(
            message="生成成功",
            request_id=task.provider_ref,
            image_url=task.image_url,
            credits_remaining=made.credits_remaining,
            seed=task.result.get("seed"),
            task_id=task.task_id,
        )
    )


async def my_records(request: Request) -> Response:
    account = await current_user(request)
    query = query_as(request, RecordsQuery)
    found = await app_services(request).images.records(account.id, query.limit)
    return answer(RecordsOut([record_view(r) for r in found]))


async def admin_codes(request: Request) -> Response:
    await check_admin(request)
    body = await body_as(request, CONVERTER, CodesIn)
    admin = app_services(request).admin
    issued = await admin.issue_codes(body.credits, body.count, body.expires_in_days)
    return answer(CodesOut("生成成功", [c.code for c in issued], body.credits))


async def admin_users(request: Request) -> Response:
    await check_admin(request)
    query = query_as(request, AdminUsersQuery)
    found = await app_services(request).admin.users(query.limit, query.offset)
    return answer(UsersOut([user_view(p) for p in found]))


async def admin_records(request: Request) -> Response:
    await check_admin(request)
    query = query_as(request, AdminRecordsQuery)
    found = await app_services(request).admin.records(query.limit)
    return answer(RecordsOut([record_view(r) for r in found]))


async def admin_stats(request: Request) -> Response:
    await check_admin(request)
    counts = await app_services(request).admin.stats()
    return answer(
        StatsOut(
            totalUsers=counts.accounts,
            totalRecords=counts.successful_tasks,
            totalCodes=counts.codes,
            usedCodes=counts.used_codes,
            totalCredits=counts.credits,
        )
    )


async def admin_webhooks(request: Request) -> Response:
    await check_admin(request)
    query = query_as(request, WebhooksQuery)
    found = await app_services(request).admin.deliveries(
        task_id=query.task, failed=query.failed, limit=query.limit
    )
    return answer(DeliveriesOut([delivery_view(d) for d in found]))


async def admin_webhook_retry(request: Request) -> Response:
    await check_admin(request)
    delivery_id = request.path_params["delivery_id"]
    if not delivery_id.isdigit() or len(delivery_id) > 18:
        raise NotFound("no such delivery")
    delivery = await app_services(request).admin.retry_delivery(int(delivery_id))
    return answer(delivery_view(delivery))


async def admin_discord_accounts(request: Request) -> Response:
    await check_admin(request)
    found = await app_services(request).midjourney.accounts()
    return answer(DiscordAccountsOut([discord_account_view(a) for a in found]))


async def admin_discord_account_add(request: Request) -> Response:
    await check_admin(request)
    body = await body_as(request, CONVERTER, DiscordAccountIn)
    account = DiscordAccount(
        body.name,
        body.guild_id,
        body.channel_id,
        Secret(body.user_token),
        None if body.bot_token is None else Secret(body.bot_token),
        concurrency=body.concurrency,
        queue_size=body.queue_size,
        mode=Mode(body.mode),
    )
    added = await app_services(request).midjourney.add_account(account)
    return answer(AccountChangeOut(discord_account_view(added), 0))


def admin_discord_account_change(verb: str) -> Handler:
    """Enable, disable or remove a pool account, by its name in the path."""

    async def change(request: Request) -> Response:
        await check_admin(request)
        name = request.path_params["name"]
        if not ACCOUNT_NAME.allows(name):
            raise NotFound(f"no Discord account named {name!r}")
        pool = app_services(request).midjourney
        failed = 0
        if verb == "enable":
            await pool.enable_account(name)
        elif verb == "disable":
            failed = await pool.disable_account(name)
        else:
            return answer(AccountChangeOut(None, await pool.remove_account(name)))
        return answer(AccountChangeOut(discord_account_view(await pool.account(name)), failed))

    return change


async def not_found(request: Request) -> Response:
    return _error(404, "Not Found")


JWT_ERRORS: dict[int, type | None] = {400: Error, 401: Error}
ADMIN_ERRORS: dict[int, type | None] = {400: Error, 401: Error, 429: Error}


def image_routes() -> BaseRoute:
    operations: list[tuple[str, str, Handler, Doc]] = [
        (
            "POST",
            "/register",
            register,
            Doc("Register (0 credits)", {200: Registered, 400: Error, 429: Error}, body=RegisterIn),
        ),
        (
            "POST",
            "/login",
            login,
            Doc(
                "Log in; returns a JWT",
                {200: LoggedIn, 400: Error, 401: Error, 429: Error},
                body=LoginIn,
            ),
        ),
        ("GET", "/user", me, Doc("The caller", {200: UserOut, 401: Error}, security="jwt")),
        (
            "POST",
            "/redeem",
            redeem,
            Doc(
                "Redeem a code",
                JWT_ERRORS | {200: Redeemed, 409: Error, 422: Error},
                body=RedeemIn,
                security="jwt",
                idempotent=True,
            ),
        ),
        (
            "POST",
            "/generate",
            generate,
            Doc(
                "Generate an image with Fireworks (cost 1; refunded on failure)",
                JWT_ERRORS
                | {
                    200: GeneratedOut,
                    402: Error,
                    409: Error,
                    422: Error,
                    502: Error,
                    503: Error,
                    504: Error,
                },
                body=GenerateIn,
                security="jwt",
                idempotent=True,
            ),
        ),
        (
            "GET",
            "/records",
            my_records,
            Doc(
                "The caller's records, newest first",
                JWT_ERRORS | {200: RecordsOut},
                query=RecordsQuery,
                security="jwt",
            ),
        ),
        (
            "POST",
            "/admin/codes",
            admin_codes,
            Doc(
                "Issue redemption codes",
                ADMIN_ERRORS | {200: CodesOut},
                body=CodesIn,
                security="admin",
            ),
        ),
        (
            "GET",
            "/admin/users",
            admin_users,
            Doc(
                "All users", ADMIN_ERRORS | {200: UsersOut}, query=AdminUsersQuery, security="admin"
            ),
        ),
        (
            "GET",
            "/admin/records",
            admin_records,
            Doc(
                "Everyone's records",
                ADMIN_ERRORS | {200: RecordsOut},
                query=AdminRecordsQuery,
                security="admin",
            ),
        ),
        (
            "GET",
            "/admin/stats",
            admin_stats,
            Doc("Totals", ADMIN_ERRORS | {200: StatsOut}, security="admin"),
        ),
        (
            "GET",
            "/admin/webhooks",
            admin_webhooks,
            Doc(
                "Webhook deliveries, newest first",
                ADMIN_ERRORS | {200: DeliveriesOut},
                query=WebhooksQuery,
                security="admin",
            ),
        ),
        (
            "POST",
            "/admin/webhooks/{delivery_id}/retry",
            admin_webhook_retry,
            Doc(
                "Send a delivery again, now (same webhook-id)",
                ADMIN_ERRORS | {200: DeliveryOut, 404: Error},
                security="admin",
            ),
        ),
        (
            "GET",
            "/admin/discord-accounts",
            admin_discord_accounts,
            Doc(
                "The pool of Discord accounts and their health (never a token)",
                ADMIN_ERRORS | {200: DiscordAccountsOut},
                security="admin",
            ),
        ),
        (
            "POST",
            "/admin/discord-accounts",
            admin_discord_account_add,
            Doc(
                "Add a Discord account to the pool (its tokens are sealed, never shown)",
                ADMIN_ERRORS | {200: AccountChangeOut, 409: Error, 413: Error},
                body=DiscordAccountIn,
                security="admin",
            ),
        ),
        *(
            (
                "POST",
                f"/admin/discord-accounts/{{name}}/{verb}",
                admin_discord_account_change(verb),
                Doc(summary, ADMIN_ERRORS | {200: AccountChangeOut, 404: Error}, security="admin"),
            )
            for verb, summary in (
                ("enable", "Put a Discord account back in service (healthy again)"),
                (
                    "disable",
                    "Take a Discord account out of service: its running jobs and the"
                    " follow-ups waiting for it fail, refunded once",
                ),
                ("remove", "Disable a Discord account, then forget it"),
            )
        ),
    ]
    return Prefix(
        "/api",
        [
            *(
                Operation(path, endpoint(handler), method, doc)
                for method, path, handler, doc in operations
            ),
            Route("/{rest:path}", endpoint(not_found)),
        ],
    )

"""What the web pages share: templates, sessions in cookies, CSRF, languages, headers.

The pages are a thin adapter over the same services as the JSON APIs. A user's session is
the image API's JWT, kept in an HttpOnly, SameSite=Strict cookie; the admin's is a JWT of
its own, bound to the configured admin password. Every form carries a per-session CSRF
token (a random cookie, echoed in a hidden field, compared in constant time). Templates
are autoescaped, so a prompt or a user name is only ever text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import cache
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import jwt
from attrs import frozen
from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mjcore.accounts import Account
from mjcore.errors import AccountUnavailable

from . import image_api, trigger_api
from .http import TooLarge, app_services, capped_stream
from .page_text import LANGUAGES, translate
from .schema import BadRequest

log = logging.getLogger("mjcore.pages")
SESSION = "mjcore_session"
ADMIN_SESSION = "mjcore_admin"
CSRF = "mjcore_csrf"
LANG = "mjcore_lang"
STATIC = "/web/static"
MAX_FIELDS = 50
FORM = "application/x-www-form-urlencoded"


class LoginRequired(Exception):
    """No valid session for a user page."""


class AdminRequired(Exception):
    """No admin session (nor Basic credentials) for an admin page."""


class CsrfRefused(Exception):
    """A form came without this session's CSRF token."""


PageHandler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


# -- templates and languages -------------------------------------------------------------


@cache
def environment() -> Environment:
    """The templates, autoescaped (built on first use, never at import)."""
    env = Environment(
        loader=PackageLoader("entrypoints", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda moment: "" if moment is None else moment.strftime("%Y-%m-%d %H:%M")
    return env


def language(request: Request) -> str:
    """The switch's choice (a cookie), else the best of ``Accept-Language``, else English."""
    chosen = request.cookies.get(LANG)
    if chosen in LANGUAGES:
        return chosen
    best, weight = "en", -1.0
    for item in request.headers.get("accept-language", "").split(",")[:20]:
        tag, _, q = item.strip().partition(";q=")
        try:
            value = float(q) if q else 1.0
        except ValueError:
            continue
        code = tag.strip().lower()[:2]
        if code in LANGUAGES and value > weight:
            best, weight = code, value
    return best


def csp(request: Request) -> str:
    """Nothing inline, nothing from elsewhere; images also from the public URL and the
    hosts result images are copied from (a copy not made yet shows the provider's)."""
    settings = app_services(request).core.settings
    images = {"'self'", "data:", _origin(settings.public_url)}
    images |= {h if "://" in h else f"https://{h}" for h in settings.mirror_hosts}
    return (
        "default-src 'self'; script-src 'self'; style-src 'self';"
        f" img-src {' '.join(sorted(images))}; object-src 'none'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def headers(request: Request) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp(request),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page: the template with the request's language, session, CSRF token and banners."""
    lang = language(request)
    settings = app_services(request).core.settings

    def t(key: str, **values: Any) -> str:
        return translate(lang, key, **values)

    html = (
        environment()
        .get_template(template)
        .render(
            t=t,
            lang=lang,
            languages=LANGUAGES,
            csrf=csrf_token(request),
            user=getattr(request.state, "user", None),
            is_admin=getattr(request.state, "admin", False),
            demo=settings.demo,
            path=request.url.path,
            area="admin" if request.url.path.startswith("/admin") else "user",
            static=STATIC,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status, headers=headers(request))


@frozen
class Problem:
    """What went wrong, as the page shows it: the API's status and message."""

    status: int
    message: str


async def attempt(request: Request, work: Awaitable[T]) -> T | Problem:
    """The result, or the :class:`Problem` the APIs report for the error (an error no
    surface knows is raised: a 500)."""
    try:
        return await work
    except Exception as exc:
        known = problem(request, exc)
        if known is None:
            raise
        return known


def problem(request: Request, exc: Exception) -> Problem | None:
    """An error as the APIs word it (one message per rule; the Midjourney page as the
    trigger API, the others as the image API), in the page's language; None for an error
    no surface knows."""
    surfaces = [image_api.error_response, trigger_api.error_response]
    if request.url.path.startswith("/web/midjourney"):  # the trigger API's words first
        surfaces.reverse()
    answer = surfaces[0](exc) or surfaces[1](exc)
    if answer is None:
        return None
    body = json.loads(bytes(answer.body))
    text = str(body.get("error") or body.get("detail") or "")
    return Problem(answer.status_code, localized(text, language(request)))


_BILINGUAL = re.compile(r"([^()]*[\u4e00-\u9fff][^()]*) \((.*)\)", re.DOTALL)


def localized(text: str, lang: str) -> str:
    """``中文 (english)`` as the language wants it: English keeps the part in brackets."""
    found = _BILINGUAL.fullmatch(text)
    if found is None or lang == "zh":
        return text
    english = found.group(2)
    return english[:1].upper() + english[1:]


# -- forms and CSRF -----------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (a new one is set as a cookie with the answer)."""
    token: str | None = getattr(request.state, "csrf", None)
    if token is None:
        token = request.cookies.get(CSRF) or ""
        if not re.fullmatch(r"[A-Za-z0-9_-]{32,64}", token):
            token = request.state.csrf_new = secrets.token_urlsafe(32)
        request.state.csrf = token
    return token


def new_csrf(request: Request) -> None:
    """A fresh CSRF token from now on (a new session gets a new token)."""
    request.state.csrf = request.state.csrf_new = secrets.token_urlsafe(32)


async def form(request: Request) -> dict[str, str]:
    """The posted form (at most ``MJCORE_MAX_BODY_BYTES``), once its CSRF token matches
    this browser's; :class:`CsrfRefused` otherwise."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != FORM:
        raise CsrfRefused()  # a form of ours is always urlencoded
    raw = bytearray()
    async for chunk in capped_stream(request, app_services(request).core.settings.max_body_bytes):
        raw += chunk
    try:
        fields = dict(parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read") from None
    given = fields.pop("csrf", "").encode()
    expected = (request.cookies.get(CSRF) or "").encode()
    if not expected or not hmac.compare_digest(given, expected):
        raise CsrfRefused()
    return fields


# -- sessions -------------------------------------------------------------------------------


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    secure = app_services(request).core.settings.public_url.startswith("https://")
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/"
    )


def start_session(response: Response, request: Request, account: Account) -> None:
    services = app_services(request)
    token = services.tokens.issue(account)
    _cookie(response, request, SESSION, token, services.core.settings.jwt_ttl_s)


async def session_user(request: Request) -> Account:
    """The account of the session cookie, else :class:`LoginRequired`."""
    try:
        account = await image_api.account_of_token(request, request.cookies.get(SESSION))
    except (image_api.Unauthorized, AccountUnavailable):
        raise LoginRequired() from None
    request.state.user = account
    return account


ADMIN_TTL = timedelta(hours=12)


def _admin_binding(request: Request) -> str:
    """Changes with the admin's name or password, so a new password ends admin sessions;
    keyed with the JWT secret, so the cookie tells nothing about the password."""
    services = app_services(request)
    settings = services.core.settings
    given = f"admin-session\0{settings.admin_username}\0{settings.admin_password}".encode()
    return hmac.new(services.tokens.secret.encode(), given, hashlib.sha256).hexdigest()


def start_admin_session(response: Response, request: Request) -> None:
    services = app_services(request)
    now = services.core.clock()
    claims = {
        "sub": "admin",
        "adm": _admin_binding(request),
        "iat": int(now.timestamp()),
        "exp": int((now + ADMIN_TTL).timestamp()),
    }
    token = jwt.encode(claims, services.tokens.secret, algorithm="HS256")
    _cookie(response, request, ADMIN_SESSION, token, int(ADMIN_TTL.total_seconds()))


async def session_admin(request: Request) -> None:
    """The admin's session cookie or Basic credentials, else :class:`AdminRequired`."""
    services = app_services(request)
    settings = services.core.settings
    token = request.cookies.get(ADMIN_SESSION)
    if token and settings.admin_username and settings.admin_password:
        try:
            claims = jwt.decode(
                token,
                services.tokens.secret,
                algorithms=["HS256"],
                options={"require": ["sub", "adm", "exp"], "verify_exp": False},
            )
            fresh = int(claims["exp"]) > services.core.clock().timestamp()
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
            fresh = False
        if (
            fresh
            and claims["sub"] == "admin"
            and hmac.compare_digest(str(claims["adm"]), _admin_binding(request))
        ):
            request.state.admin = True
            return
    if "authorization" in request.headers:
        try:
            await image_api.check_admin(request)
        except image_api.AdminUnauthorized:
            raise AdminRequired() from None
        request.state.admin = True
        return
    raise AdminRequired()


def end_sessions(response: Response, *names: str) -> None:
    for name in names:
        response.delete_cookie(name, path="/", httponly=True, samesite="strict")


def safe_next(target: str | None, fallback: str) -> str:
    """A local path to go back to (never another site's)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return fallback


# -- routes ---------------------------------------------------------------------------------


class PageRoute(Route):
    """A web page's route: HTML for browsers, kept out of ``/openapi.json`` (the API's)."""

    def __init__(self, path: str, endpoint: PageHandler, methods: list[str]) -> None:
        super().__init__(path, endpoint, methods=methods)


def see(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


Who = Literal["user", "admin", "anyone"]


def page(handler: PageHandler, who: Who = "user") -> PageHandler:
    """A page handler guarded by its session (``user``, ``admin`` or ``anyone``): without
    it a GET goes to the login page and anything else is refused; errors the APIs know
    become the page with their message; the CSRF cookie is set when new."""

    async def endpoint(request: Request) -> Response:
        try:
            if who == "user":
                await session_user(request)
            elif who == "admin":
                await session_admin(request)
            response = await handler(request)
        except (LoginRequired, AdminRequired) as exc:
            login = "/web/login" if isinstance(exc, LoginRequired) else "/admin/login"
            if request.method == "GET":
                response = see(f"{login}?next={quote(request.url.path)}")
            else:
                response = render(request, "refused.html", 401, reason="login")
            if isinstance(exc, AdminRequired) and "authorization" in request.headers:
                response.headers["WWW-Authenticate"] = 'Basic realm="mjcore"'
        except CsrfRefused:
            response = render(request, "refused.html", 403, reason="csrf")
        except TooLarge:
            response = render(request, "refused.html", 413, reason="large")
        except Exception as exc:
            known = problem(request, exc)
            if known is None:
                log.error("page.unexpected_error", exc_info=exc)
                response = render(request, "refused.html", 500, reason="internal")
            else:
                response = render(
                    request, "refused.html", known.status, reason="", message=known.message
                )
        fresh = getattr(request.state, "csrf_new", None)
        if fresh is not None:
            _cookie(response, request, CSRF, fresh, 7 * 24 * 3600)
        for name, value in headers(request).items():
            response.headers.setdefault(name, value)
        return response

    return endpoint


async def switch_language(request: Request) -> Response:
    fields = await form(request)
    lang = fields.get("lang", "")
    response = see(safe_next(fields.get("next"), "/web/"))
    if lang in LANGUAGES:
        response.set_cookie(LANG, lang, max_age=365 * 24 * 3600, samesite="strict", path="/")
    return response


async def home(request: Request) -> Response:
    return see("/web/")


def shared_routes() -> list[BaseRoute]:
    return [
        PageRoute("/", page(home, "anyone"), ["GET"]),
        PageRoute("/web/lang", page(switch_language, "anyone"), ["POST"]),
        Mount(STATIC, StaticFiles(packages=[("entrypoints", "static")]), name="web-static"),
    ]

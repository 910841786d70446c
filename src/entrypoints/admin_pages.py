"""The operator's web pages (``/admin``): overview with charts, users, codes, records,
tasks, the Discord pool, webhook deliveries and the ledger check.

An admin session comes from the admin log-in form (the configured
``MJCORE_ADMIN_USERNAME``/``PASSWORD``, rate-limited like the admin API) or from HTTP
Basic credentials on each request.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from mjcore.discord_accounts import ACCOUNT_NAME
from mjcore.errors import InvalidInput, NotFound
from mjcore.services.console import Checked
from mjcore.services.tasks import TaskPage
from mjcore.tasks import TaskStatus

from .charts import bars
from .http import app_services
from .image_api import AdminUnauthorized, admin_matches
from .image_schema import CodesIn
from .page_text import translate
from .pages import (
    ADMIN_SESSION,
    PageRoute,
    Problem,
    attempt,
    end_sessions,
    form,
    headers,
    language,
    new_csrf,
    page,
    render,
    safe_next,
    see,
    start_admin_session,
)
from .ratelimit import client_address
from .schema import structure
from .user_pages import FORM, filled

LISTED = 100
USER_VERBS = ("grant", "disable", "enable")
CHART_DAYS = 14


def _t(request: Request, key: str, **values: Any) -> str:
    return translate(language(request), key, **values)


def _whole(text: str, name: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 12:
        raise InvalidInput(f"{name} must be a whole number")
    return int(text)


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "admin_login.html", next=request.query_params.get("next", ""))
    fields = await form(request)
    services = app_services(request)
    address = client_address(request)

    async def check() -> bool:
        await services.limits.admin_allowed(address)
        settings = services.core.settings
        if admin_matches(settings, fields.get("username", ""), fields.get("password", "")):
            return True
        await services.limits.admin_failed(address)
        raise AdminUnauthorized()

    checked = await attempt(request, check())
    if isinstance(checked, Problem):
        return render(request, "admin_login.html", checked.status, next="", error=checked.message)
    response = see(safe_next(fields.get("next"), "/admin/"))
    new_csrf(request)
    start_admin_session(response, request)
    return response


async def logout(request: Request) -> Response:
    await form(request)
    response = see("/admin/login")
    end_sessions(response, ADMIN_SESSION)
    return response


async def overview(request: Request) -> Response:
    services = app_services(request)
    counts = await services.admin.stats()
    days = await services.console.days(CHART_DAYS)
    dates = [d.day.strftime("%m-%d") for d in days]
    generations = bars(_t(request, "chart_generations"), dates, [[d.generations for d in days]])
    credits = bars(
        _t(request, "chart_credits"),
        dates,
        [[d.spent for d in days], [d.granted for d in days]],
        [_t(request, "spent"), _t(request, "granted")],
    )
    return render(request, "admin_overview.html", counts=counts, charts=[generations, credits])


async def users(request: Request, status: int = 200, **context: Any) -> Response:
    search = request.query_params.get("q", "")[:64]
    found = await app_services(request).console.find_users(search, LISTED)
    return render(request, "admin_users.html", status, found=found, q=search, **context)


async def users_home(request: Request) -> Response:
    return await users(request)


async def users_change(request: Request) -> Response:
    fields = await form(request)
    console = app_services(request).console
    name = fields.get("user", "")
    verb = request.url.path.rsplit("/", 1)[-1]

    async def change() -> str:
        if verb == "grant":
            credits = _whole(fields.get("credits", ""), "credits")
            await console.grant(name, credits)
            return _t(request, "granted_to", credits=credits, user=name)
        disabled = verb == "disable"
        await console.set_disabled(name, disabled)
        return _t(
            request, "changed", user=name, state=_t(request, "disabled" if disabled else "active")
        )

    done = await attempt(request, change())
    if isinstance(done, Problem):
        return await users(request, done.status, error=done.message)
    return await users(request, notice=done)


async def codes(request: Request, status: int = 200, **context: Any) -> Response:
    services = app_services(request)
    unused = request.query_params.get("unused") == "1"
    found = await services.console.codes(LISTED, unused_only=unused)
    names = await services.console.names([c.redeemed_by for c in found if c.redeemed_by])
    return render(
        request,
        "admin_codes.html",
        status,
        found=found,
        names=names,
        unused=unused,
        now=services.core.clock(),
        **context,
    )


async def codes_home(request: Request) -> Response:
    return await codes(request)


async def codes_create(request: Request) -> Response:
    fields = await form(request)

    async def issue() -> list[str]:
        given = filled(fields, "credits", "count", "expires_in_days")
        body = structure(FORM, given, CodesIn, "form")
        issued = await app_services(request).admin.issue_codes(
            body.credits, body.count, body.expires_in_days
        )
        return [c.code for c in issued]

    made = await attempt(request, issue())
    if isinstance(made, Problem):
        return await codes(request, made.status, error=made.message)
    return await codes(request, made=made, notice=_t(request, "created_codes", count=len(made)))


async def codes_csv(request: Request) -> Response:
    services = app_services(request)
    found = await services.console.codes(10_000)
    names = await services.console.names([c.redeemed_by for c in found if c.redeemed_by])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "credits", "created_at", "expires_at", "redeemed_by", "redeemed_at"])
    for code in found:
        writer.writerow(
            [
                code.code,
                code.credits,
                code.created_at.isoformat(),
                code.expires_at.isoformat() if code.expires_at else "",
                names.get(code.redeemed_by, "") if code.redeemed_by else "",
                code.redeemed_at.isoformat() if code.redeemed_at else "",
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers=headers(request) | {"Content-Disposition": 'attachment; filename="codes.csv"'},
    )


async def records(request: Request) -> Response:
    found = await app_services(request).admin.records(LISTED)
    return render(request, "admin_records.html", records=found)


async def tasks(request: Request, status: int = 200, **context: Any) -> Response:
    console = app_services(request).console
    wanted = request.query_params.get("status", "")
    user = request.query_params.get("user", "")[:64]

    async def look() -> TaskPage:
        chosen = TaskStatus(wanted) if wanted in {s.value for s in TaskStatus} else None
        return await console.tasks(user_name=user or None, status=chosen, limit=LISTED)

    found = await attempt(request, look())
    if isinstance(found, Problem):
        status, context["error"] = found.status, found.message
        found = TaskPage((), 0)
    shown = found.tasks
    names = await console.names([t.account_id for t in shown])
    return render(
        request,
        "admin_tasks.html",
        status,
        found=shown,
        total=found.total,
        names=names,
        statuses=[s.value for s in TaskStatus],
        wanted=wanted,
        user_filter=user,
        **context,
    )


async def tasks_home(request: Request) -> Response:
    return await tasks(request)


async def tasks_fail(request: Request) -> Response:
    fields = await form(request)
    task_id = fields.get("task_id", "")[:64]
    reason = fields.get("reason", "").strip()[:300] or "failed by the operator"
    task = await attempt(request, app_services(request).console.fail(task_id, reason))
    if isinstance(task, Problem):
        return await tasks(request, task.status, error=task.message)
    notice = _t(request, "failed_task", task_id=task.task_id, status=task.status.value)
    return await tasks(request, notice=notice)


async def pool(request: Request, status: int = 200, **context: Any) -> Response:
    found = await app_services(request).midjourney.accounts()
    return render(request, "admin_pool.html", status, found=found, **context)


async def pool_home(request: Request) -> Response:
    return await pool(request)


async def pool_change(request: Request) -> Response:
    fields = await form(request)
    name = fields.get("name", "")
    verb = request.url.path.rsplit("/", 1)[-1]
    service = app_services(request).midjourney

    async def change() -> str:
        if not ACCOUNT_NAME.allows(name):
            raise NotFound(f"no Discord account named {name!r}")
        if verb == "enable":
            await service.enable_account(name)
        else:
            await service.disable_account(name)
        state = _t(request, "active" if verb == "enable" else "disabled")
        return _t(request, "pool_changed", name=name, state=state)

    done = await attempt(request, change())
    if isinstance(done, Problem):
        return await pool(request, done.status, error=done.message)
    return await pool(request, notice=done)


async def webhooks(request: Request, status: int = 200, **context: Any) -> Response:
    failed = request.query_params.get("failed") == "1"
    found = await app_services(request).admin.deliveries(failed=failed, limit=LISTED)
    return render(request, "admin_webhooks.html", status, found=found, failed=failed, **context)


async def webhooks_home(request: Request) -> Response:
    return await webhooks(request)


async def webhook_retry(request: Request) -> Response:
    fields = await form(request)
    given = fields.get("delivery", "")
    admin = app_services(request).admin

    async def retry() -> str:
        delivery = await admin.retry_delivery(_whole(given, "delivery"))
        return f"{delivery.webhook_id}: {delivery.status}"

    done = await attempt(request, retry())
    if isinstance(done, Problem):
        return await webhooks(request, done.status, error=done.message)
    return await webhooks(request, notice=done)


async def ledger(request: Request) -> Response:
    checked: Checked | None = None
    if request.method == "POST":
        await form(request)
        checked = await app_services(request).console.verify()
    return render(request, "admin_ledger.html", checked=checked)


def admin_routes() -> list[BaseRoute]:
    get, post = ["GET"], ["POST"]

    def admin(path: str, handler: Any, methods: list[str]) -> PageRoute:
        return PageRoute(path, page(handler, "admin"), methods)

    return [
        PageRoute("/admin/login", page(login_page, "anyone"), ["GET", "POST"]),
        admin("/admin/logout", logout, post),
        admin("/admin/", overview, get),
        admin("/admin/users", users_home, get),
        *(admin(f"/admin/users/{verb}", users_change, post) for verb in USER_VERBS),
        admin("/admin/codes", codes_home, get),
        admin("/admin/codes", codes_create, post),
        admin("/admin/codes.csv", codes_csv, get),
        admin("/admin/records", records, get),
        admin("/admin/tasks", tasks_home, get),
        admin("/admin/tasks/fail", tasks_fail, post),
        admin("/admin/pool", pool_home, get),
        *(admin(f"/admin/pool/{verb}", pool_change, post) for verb in ("enable", "disable")),
        admin("/admin/webhooks", webhooks_home, get),
        admin("/admin/webhooks/retry", webhook_retry, post),
        admin("/admin/ledger", ledger, ["GET", "POST"]),
    ]

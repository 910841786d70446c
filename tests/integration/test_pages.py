"""The web pages over HTTP (in process): every page wants its session, every form its CSRF
token, what users type is shown as text, and the answers carry the security headers."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from entrypoints.pages import PageRoute
from mjcore.services.accounts import create_account, set_password

from ..fakes.discord import FakeDiscord
from ..inprocess import InProcess, in_process

ADMIN = ("root", "admin-password-for-tests")
PASSWORD = "password-123"
XSS_PROMPT = '<script>alert("p")</script>"><img src=x onerror=alert(1)>'


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[InProcess]:
    env = {
        "MJCORE_ADMIN_USERNAME": ADMIN[0],
        "MJCORE_ADMIN_PASSWORD": ADMIN[1],
        "MJCORE_LOGIN_RATE_PER_NAME": "3/minute",
    }
    async with in_process(env, tmp_path) as served:
        yield served


def page_routes(served: InProcess) -> list[tuple[str, str]]:
    return sorted(
        (method, route.path)
        for route in served.app.routes
        if isinstance(route, PageRoute)
        for method in route.methods or ()
        if method != "HEAD"
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def browser(served: InProcess) -> httpx.AsyncClient:
    """A fresh client with its own cookies, as a second browser would be."""
    transport = httpx.ASGITransport(app=served.app)
    return httpx.AsyncClient(transport=transport, base_url=served.url)


async def logged_in(served: InProcess, name: str, credits: int = 0) -> httpx.AsyncClient:
    core = served.app.state.services.core
    await create_account(core.store, core.clock, name, credits)
    await set_password(core.store, core.clock, core.hasher, name, PASSWORD)
    client = await browser(served)
    token = csrf_of((await client.get("/web/login")).text)
    answer = await client.post(
        "/web/login", data={"csrf": token, "username": name, "password": PASSWORD}
    )
    assert answer.status_code == 303, answer.text
    return client


async def admin_browser(served: InProcess) -> httpx.AsyncClient:
    client = await browser(served)
    token = csrf_of((await client.get("/admin/login")).text)
    answer = await client.post(
        "/admin/login", data={"csrf": token, "username": ADMIN[0], "password": ADMIN[1]}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/"
    return client


OPEN = {"/", "/web/login", "/web/register", "/web/lang", "/admin/login"}


async def test_no_page_works_without_its_session(app: InProcess) -> None:
    routes = page_routes(app)
    assert len(routes) >= 25
    user = await logged_in(app, "someone", 5)
    anonymous = await browser(app)
    token = csrf_of((await anonymous.get("/web/login")).text)
    for method, path in routes:
        if path in OPEN:
            continue
        for client, who in ((anonymous, "nobody"), (user, "a user")):
            if who == "a user" and not path.startswith("/admin"):
                continue
            answer = await client.request(method, path, data={"csrf": token, "user": "someone"})
            if method == "GET":
                assert answer.status_code == 303, (who, method, path)
                login = "/admin/login" if path.startswith("/admin") else "/web/login"
                assert answer.headers["location"].startswith(f"{login}?next="), (who, path)
            else:
                assert answer.status_code == 401, (who, method, path)
            assert "someone" not in answer.text or path.startswith("/web")
    # nothing a refused form asked for happened
    core = app.app.state.services.core
    async with core.store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.by_name("someone")
    assert account is not None and account.credits == 5 and not account.disabled


async def test_admin_pages_take_basic_credentials_and_refuse_wrong_ones(app: InProcess) -> None:
    good = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    bad = base64.b64encode(f"{ADMIN[0]}:wrong".encode()).decode()
    async with await browser(app) as client:
        answer = await client.get("/admin/users", headers={"Authorization": f"Basic {good}"})
        assert answer.status_code == 200 and 'id="users"' in answer.text
        refused = await client.get("/admin/users", headers={"Authorization": f"Basic {bad}"})
        assert refused.status_code == 303
        assert refused.headers["www-authenticate"] == 'Basic realm="mjcore"'


async def test_a_forged_or_foreign_admin_cookie_is_no_session(app: InProcess) -> None:
    user = await logged_in(app, "mallory")
    session = user.cookies["mjcore_session"]
    async with await browser(app) as client:
        client.cookies.set("mjcore_admin", session)  # a user's JWT is not an admin session
        assert (await client.get("/admin/")).status_code == 303
        client.cookies.set("mjcore_admin", "e30.e30.")  # alg none, empty
        assert (await client.get("/admin/")).status_code == 303


async def test_forms_without_or_with_a_wrong_csrf_token_are_refused(app: InProcess) -> None:
    admin = await admin_browser(app)
    page = await admin.get("/admin/codes")
    made = await admin.post("/admin/codes", data={"csrf": csrf_of(page.text), "credits": "7"})
    [code] = re.findall(r"[A-Z2-9]{16}", made.text.split('id="made-codes">')[1])[:1]
    user = await logged_in(app, "carol")
    good = csrf_of((await user.get("/web/")).text)
    for given in ({}, {"csrf": ""}, {"csrf": "x" * 43}, {"csrf": csrf_of(page.text)}):
        refused = await user.post("/web/redeem", data={"code": code, **given})
        assert refused.status_code == 403, given
        assert "did not come from this site" in refused.text
    as_json = await user.post("/web/redeem", json={"code": code, "csrf": good})
    assert as_json.status_code == 403  # only our urlencoded forms
    profile = await user.get("/web/")
    assert re.search(r'id="balance">0<', profile.text)
    done = await user.post("/web/redeem", data={"code": code, "csrf": good})
    assert done.status_code == 200 and re.search(r'id="balance">7<', done.text)


async def test_a_new_login_gets_a_new_csrf_token(app: InProcess) -> None:
    client = await browser(app)
    before = csrf_of((await client.get("/web/login")).text)
    core = app.app.state.services.core
    await create_account(core.store, core.clock, "dave", 0)
    await set_password(core.store, core.clock, core.hasher, "dave", PASSWORD)
    await client.post("/web/login", data={"csrf": before, "username": "dave", "password": PASSWORD})
    after = csrf_of((await client.get("/web/")).text)
    assert after != before


async def test_what_users_type_is_shown_as_text(
    app: InProcess, discord: FakeDiscord, tmp_path: Path
) -> None:
    client = await browser(app)
    token = csrf_of((await client.get("/web/register")).text)
    probe = '"><img src=x onerror=alert(1)>'
    refused = await client.post(
        "/web/register", data={"csrf": token, "username": probe, "password": PASSWORD}
    )
    assert refused.status_code == 400
    assert probe not in refused.text
    assert 'value="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in refused.text
    (tmp_path / "mj").mkdir()
    async with in_process(discord.env(), tmp_path / "mj") as served:  # a job is accepted
        user = await logged_in(served, "erin", 3)
        sent = await user.post(
            "/web/midjourney",
            data={"csrf": csrf_of((await user.get("/web/")).text), "prompt": XSS_PROMPT},
        )
        assert sent.status_code == 303
        shown = (await user.get("/web/midjourney")).text
    assert "&lt;script&gt;alert(&#34;p&#34;)&lt;/script&gt;" in shown  # the prompt, as text
    assert "<script>alert" not in shown and "<img src=x" not in shown


async def test_pages_carry_the_security_headers(app: InProcess) -> None:
    client = await browser(app)
    for path in ("/web/login", "/web/register", "/admin/login"):
        answer = await client.get(path)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "<script" not in answer.text  # no inline script at all
    first = await (await browser(app)).get("/web/login")
    cookies = first.headers.get_list("set-cookie")
    assert any(c.startswith("mjcore_csrf=") and "HttpOnly" in c for c in cookies)
    assert all("SameSite=strict" in c or "samesite=strict" in c.lower() for c in cookies)


async def test_the_language_follows_accept_language_and_the_switch(app: InProcess) -> None:
    client = await browser(app)
    chinese = await client.get("/web/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert "登录" in chinese.text and 'lang="zh-CN"' in chinese.text
    english = await client.get("/web/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert 'lang="en"' in english.text
    token = csrf_of(english.text)
    switched = await client.post("/web/lang", data={"csrf": token, "lang": "zh", "next": "//evil"})
    assert switched.status_code == 303 and switched.headers["location"] == "/web/"
    again = await client.get("/web/login", headers={"Accept-Language": "en"})
    assert 'lang="zh-CN"' in again.text


async def test_page_logins_share_the_apis_rate_limit_and_wrong_password_message(
    app: InProcess,
) -> None:
    client = await browser(app)
    token = csrf_of((await client.get("/web/login")).text)
    statuses = []
    for _ in range(4):
        answer = await client.post(
            "/web/login", data={"csrf": token, "username": "frank", "password": "not-it-at-all"}
        )
        statuses.append(answer.status_code)
    assert statuses == [401, 401, 401, 429]
    assert "Too many requests" in answer.text or "请求过于频繁" in answer.text


async def test_a_body_over_the_limit_is_refused(app: InProcess) -> None:
    client = await browser(app)
    token = csrf_of((await client.get("/web/login")).text)
    big = "x" * (2 * 1024 * 1024)
    answer = await client.post("/web/login", data={"csrf": token, "username": big})
    assert answer.status_code == 413


async def test_the_admin_csv_lists_codes_and_the_ledger_check_reports(app: InProcess) -> None:
    admin = await admin_browser(app)
    token = csrf_of((await admin.get("/admin/codes")).text)
    await admin.post("/admin/codes", data={"csrf": token, "credits": "3", "count": "4"})
    csv = await admin.get("/admin/codes.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert len(csv.text.strip().splitlines()) == 5
    checked = await admin.post("/admin/ledger", data={"csrf": token})
    assert 'data-ok="true"' in checked.text
    overview = await admin.get("/admin/")
    assert overview.text.count("<svg") == 2


async def test_the_admin_fails_a_stuck_job_and_it_is_refunded_once(
    discord: FakeDiscord, tmp_path: Path
) -> None:
    env = discord.env() | {"MJCORE_ADMIN_USERNAME": ADMIN[0], "MJCORE_ADMIN_PASSWORD": ADMIN[1]}
    async with in_process(env, tmp_path) as served:
        user = await logged_in(served, "grace", 2)
        token = csrf_of((await user.get("/web/")).text)
        sent = await user.post("/web/midjourney", data={"csrf": token, "prompt": "a stuck job"})
        assert sent.status_code == 303  # accepted; nobody at the fake Discord answers
        assert re.search(r'id="balance">1<', (await user.get("/web/")).text)
        admin = await admin_browser(served)
        listed = await admin.get("/admin/tasks", params={"status": "SUBMITTED", "user": "grace"})
        [task_id] = re.findall(r'<tr data-task="([^"]+)">', listed.text)
        token = csrf_of(listed.text)
        for _ in range(2):  # the second time it has ended already: nothing more
            failed = await admin.post(
                "/admin/tasks/fail", data={"csrf": token, "task_id": task_id, "reason": "stuck"}
            )
            assert failed.status_code == 200 and f"{task_id}: FAILURE" in failed.text
        assert re.search(r'id="balance">2<', (await user.get("/web/")).text)
        job = await user.get("/web/midjourney")
        assert f'id="job-{task_id}" data-status="FAILURE"' in job.text and "stuck" in job.text
        checked = await admin.post("/admin/ledger", data={"csrf": token})
        assert 'data-ok="true"' in checked.text


async def test_a_disabled_account_loses_its_session_and_buttons_are_checked(
    app: InProcess,
) -> None:
    user = await logged_in(app, "heidi", 3)
    token = csrf_of((await user.get("/web/")).text)
    for button in ("nonsense", "describe", "upscale:5", "expand:sideways", "zoomout:60"):
        refused = await user.post(
            "/web/midjourney/press", data={"csrf": token, "task_id": "x", "button": button}
        )
        assert refused.status_code == 400, button
    missing = await user.post(
        "/web/midjourney/press", data={"csrf": token, "task_id": "nope", "button": "upscale:1"}
    )
    assert missing.status_code == 404 and "Task not found" in missing.text
    admin = await admin_browser(app)
    admin_token = csrf_of((await admin.get("/admin/users")).text)
    await admin.post("/admin/users/disable", data={"csrf": admin_token, "user": "heidi"})
    answer = await user.get("/web/")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/web/login")


async def test_failed_admin_logins_are_rate_limited(tmp_path: Path) -> None:
    env = {
        "MJCORE_ADMIN_USERNAME": ADMIN[0],
        "MJCORE_ADMIN_PASSWORD": ADMIN[1],
        "MJCORE_ADMIN_FAILURE_RATE_PER_ADDRESS": "2/minute",
    }
    async with in_process(env, tmp_path) as served:
        client = await browser(served)
        token = csrf_of((await client.get("/admin/login")).text)
        statuses = []
        for password in ("wrong-1", "wrong-2", ADMIN[1]):
            answer = await client.post(
                "/admin/login", data={"csrf": token, "username": ADMIN[0], "password": password}
            )
            statuses.append(answer.status_code)
        assert statuses == [401, 401, 429]  # even the right password, once refused
        assert (await client.get("/admin/")).status_code == 303

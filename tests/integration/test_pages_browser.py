"""The web pages in a real browser (Debian's chromium driven by Playwright) against a real
``mjcore serve``: a user registers, logs in, redeems a code the admin made, generates on
the fake Fireworks and finds it in the gallery; a Midjourney job on the fake Discord goes
from imagine to U1; failures show clear messages and leave the balance right; what users
type never runs. Every page is photographed at 1280 px and at a phone's 390 px
(``MJCORE_SCREENSHOT_DIR``, else ``tests/artifacts/screenshots``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..fakes.discord import FakeDiscord
from ..fakes.fireworks import FakeFireworks
from ..servers import Served, mjcore_serve
from .test_docs_page import ARGS, ARTIFACTS, CHROMIUM

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
)
SHOTS = Path(os.environ.get("MJCORE_SCREENSHOT_DIR", ARTIFACTS / "screenshots"))
ADMIN = ("root", "admin-password-for-browser")
PASSWORD = "password-1234"
PROMPT_PROBE = '<script>alert("prompt")</script>"><img src=x onerror=alert(1)> a cat'
NAME_PROBE = '"><img src=x onerror=alert(2)>'
WAIT_MS = 20_000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright: Any) -> Iterator[Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        yield browser
    finally:
        browser.close()


class Watched:
    """A browser tab whose dialogs (an XSS that ran) and script errors are kept."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport=DESKTOP)
        self.page = self.context.new_page()
        self.base = base
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # a CSP refusal (an inline style or script, an image from elsewhere) is logged so
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # a 4xx page is an answer here (a refused form), not a failure of the page
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(str(message.text))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def go(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.page

    def submit(self, form: str, **fields: str) -> Any:
        for name, value in fields.items():
            self.page.fill(f"{form} [name={name}]", value)
        with self.page.expect_navigation():
            self.page.click(f"{form} button[type=submit]")
        return self.page

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector))

    def balance(self) -> int:
        return int(self.go("/web/").inner_text("#balance"))

    def shoot(self, name: str) -> None:
        """The page now, at desktop and at phone width (which must not scroll sideways)."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.set_viewport_size(DESKTOP)
        self.page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
        self.page.set_viewport_size(PHONE)
        self.page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
        wide = self.page.evaluate("document.documentElement.scrollWidth")
        assert wide <= PHONE["width"] + 1, f"{name} scrolls sideways on a phone ({wide}px)"
        self.page.set_viewport_size(DESKTOP)

    def close(self) -> None:
        self.context.close()


def log_in(tab: Watched, name: str, password: str) -> Any:
    tab.go("/web/login")
    return tab.submit("form[action='/web/login']", username=name, password=password)


def admin_tab(browser: Any, served: Served) -> Watched:
    admin = Watched(browser, served.url)
    admin.go("/admin/login")
    admin.shoot("admin-login")
    admin.submit("form[action='/admin/login']", username=ADMIN[0], password=ADMIN[1])
    assert admin.page.url == f"{served.url}/admin/"
    return admin


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, FakeFireworks]]:
    fake = FakeFireworks()
    home = tmp_path_factory.mktemp("pages")
    env = fake.env() | {
        "MJCORE_ADMIN_USERNAME": ADMIN[0],
        "MJCORE_ADMIN_PASSWORD": ADMIN[1],
        "MJCORE_DATABASE_URL": f"sqlite:///{home / 'mjcore.db'}",
    }
    with fake.server, mjcore_serve(env, home) as server:
        yield server, fake


def test_register_redeem_generate_and_find_it_in_the_gallery(
    chromium: Any, served: tuple[Served, FakeFireworks]
) -> None:
    server, _ = served
    user = Watched(chromium, server.url)
    admin = admin_tab(chromium, server)
    try:
        # registering: a name that is markup is refused and shown back as text
        user.go("/web/register")
        page = user.submit("form[action='/web/register']", username=NAME_PROBE, password=PASSWORD)
        assert page.is_visible("#error")
        assert page.input_value("[name=username]") == NAME_PROBE
        assert page.locator("img[src=x]").count() == 0
        user.shoot("register")
        user.submit("form[action='/web/register']", username="alice", password=PASSWORD)
        assert "/web/login" in user.page.url and user.page.is_visible("#notice")

        # a wrong password says so; the right one lands on the balance
        page = log_in(user, "alice", "not-the-password")
        assert "wrong username or password" in user.text("#error").lower()
        user.shoot("login")
        log_in(user, "alice", PASSWORD)
        assert user.page.url == f"{server.url}/web/"
        assert user.balance() == 0

        # no credits: a clear message, nothing charged
        user.submit("#generate", prompt="a lighthouse")
        assert "not enough credits" in user.text("#error").lower()
        assert user.balance() == 0

        # the admin makes codes; the user redeems one
        admin.go("/admin/codes")
        admin.submit("#create-codes", credits="5", count="2")
        codes = admin.text("#made-codes").split()
        assert len(codes) == 2
        user.go("/web/")
        user.submit("#redeem", code=codes[0].lower())  # any case
        assert "5" in user.text("#notice") and user.text("#balance") == "5"
        user.submit("#redeem", code=codes[0])  # once only
        assert "already used" in user.text("#error").lower()

        # generating: the result is shown; the prompt's markup is only text
        user.go("/web/")
        user.page.select_option("[name=aspect_ratio]", "16:9")
        user.submit("#generate", prompt=PROMPT_PROBE, seed="42")
        user.page.wait_for_function(
            "document.querySelector('#result img') && document.querySelector('#result img')"
            ".naturalWidth > 0",
            timeout=WAIT_MS,
        )
        assert user.text("#balance") == "4"
        assert PROMPT_PROBE in user.text("#result figcaption")
        user.shoot("dashboard")

        # a provider failure: a clear message, refunded
        user.submit("#generate", prompt="[500] a failing prompt")
        assert user.page.is_visible("#error")
        assert user.balance() == 4

        # the gallery has it, as text
        page = user.go("/web/gallery")
        assert page.locator("#gallery .tile").count() == 1
        assert PROMPT_PROBE in user.text("#gallery .tile .prompt")
        page.wait_for_function(
            "[...document.querySelectorAll('#gallery img')].every(i => i.naturalWidth > 0)",
            timeout=WAIT_MS,
        )
        user.shoot("gallery")
        user.go("/web/midjourney")
        user.shoot("midjourney-empty")
        user.go("/web/key")
        with user.page.expect_navigation():
            user.page.click("#rotate")
        assert re.fullmatch(r"\S{32,}", user.text("#new-key"))
        assert user.balance() == 4  # still logged in after the rotation
        user.shoot("key")

        # the admin sees the redemption, the record and the totals
        admin.go("/admin/codes")
        row = admin.page.locator(f"tr[data-code='{codes[0]}'] .redeemed")
        assert "alice" in row.inner_text()
        admin.shoot("admin-codes")
        admin.go("/admin/records")
        assert PROMPT_PROBE in admin.text("#records")
        admin.shoot("admin-records")
        admin.go("/admin/")
        assert admin.text("#used-codes") == "1"
        assert admin.page.locator("svg rect.bar").count() > 0
        admin.shoot("admin-overview")
        for name in ("users", "tasks", "pool", "webhooks", "ledger"):
            admin.go(f"/admin/{name}")
            if name == "ledger":
                with admin.page.expect_navigation():
                    admin.page.click("#verify")
                assert admin.page.get_attribute("#ledger-result", "data-ok") == "true"
            admin.shoot(f"admin-{name}")

        assert user.dialogs == [] and admin.dialogs == []
        assert user.errors == [] and admin.errors == []
    finally:
        user.close()
        admin.close()


def test_a_midjourney_job_from_imagine_to_u1_in_the_page(chromium: Any, tmp_path: Path) -> None:
    with FakeDiscord(midjourney=True, heartbeat_interval_ms=500) as fake:
        env = fake.listener_env() | {
            "MJCORE_ADMIN_USERNAME": ADMIN[0],
            "MJCORE_ADMIN_PASSWORD": ADMIN[1],
        }
        connections = fake.gateway.connections
        with mjcore_serve(env, tmp_path) as server:
            deadline = time.monotonic() + 15
            while fake.gateway.connections <= connections or not fake.gateway.connected:
                assert time.monotonic() < deadline, "the listener did not connect"
                time.sleep(0.05)
            user = Watched(chromium, server.url)
            admin = admin_tab(chromium, server)
            try:
                user.go("/web/register")
                user.submit("form[action='/web/register']", username="bob", password=PASSWORD)
                log_in(user, "bob", PASSWORD)
                admin.go("/admin/users?q=bo")
                admin.submit("tr[data-user=bob] form[action='/admin/users/grant']", credits="3")
                assert admin.text("tr[data-user=bob] .credits") == "3"
                admin.go("/admin/pool")
                assert "healthy" in admin.text("#pool")

                page = user.go("/web/midjourney")
                user.submit("#imagine", prompt=PROMPT_PROBE)
                grid = "article[data-action=imagine][data-status=SUCCESS]"
                page.wait_for_selector(f"{grid} button[data-button='upscale:1']", timeout=WAIT_MS)
                assert PROMPT_PROBE in page.inner_text(f"{grid} .prompt")
                with page.expect_navigation():
                    page.click(f"{grid} button[data-button='upscale:1']")
                upscale = "article[data-action=upscale][data-status=SUCCESS]"
                page.wait_for_selector(f"{upscale} img", timeout=WAIT_MS)
                page.wait_for_selector(f"{upscale} button[data-button='zoomout:50']")
                user.shoot("midjourney")
                assert user.balance() == 1  # imagine and U1, one credit each
                admin.go("/admin/tasks")
                assert admin.page.locator("#tasks tr[data-task]").count() == 2
                assert user.dialogs == [] and user.errors == []
            finally:
                user.close()
                admin.close()


def test_the_demo_in_a_browser(chromium: Any, tmp_path: Path) -> None:
    """``serve --demo`` end to end: the banner, placeholder images, a simulated grid and
    upscale; its pages are the README's screenshots (``demo-*``)."""
    with mjcore_serve({}, tmp_path, "--demo") as server:
        printed = re.search(r"user 'admin', password '([^']+)'", server.log.read_text())
        assert printed is not None
        user = Watched(chromium, server.url)
        admin = Watched(chromium, server.url)
        try:
            log_in(user, "demo", "demo-password")
            assert "Demo mode" in user.text(".demo")
            for prompt, ratio in (("a lighthouse at dusk", "16:9"), ("a red fox", "1:1")):
                user.go("/web/")
                user.page.select_option("[name=aspect_ratio]", ratio)
                user.submit("#generate", prompt=prompt)
                assert user.page.is_visible("#result img")
            user.shoot("demo-dashboard")
            page = user.go("/web/midjourney")
            user.submit("#imagine", prompt="a castle on a hill, watercolor")
            grid = "article[data-action=imagine][data-status=SUCCESS]"
            page.wait_for_selector(f"{grid} button[data-button='upscale:2']", timeout=WAIT_MS)
            with page.expect_navigation():
                page.click(f"{grid} button[data-button='upscale:2']")
            page.wait_for_selector(
                "article[data-action=upscale][data-status=SUCCESS] img", timeout=WAIT_MS
            )
            user.shoot("demo-midjourney")
            user.go("/web/gallery")
            user.shoot("demo-gallery")
            user.page.select_option("form.lang select", "zh")  # the switch, kept in a cookie
            with user.page.expect_navigation():
                user.page.click("form.lang button")
            assert user.page.url.endswith("/web/gallery") and "作品" in user.text("h1")
            user.go("/web/")
            assert "余额" in user.text(".stats") and "演示模式" in user.text(".demo")
            user.shoot("demo-dashboard-zh")
            admin.go("/admin/login")
            admin.submit("form[action='/admin/login']", username="admin", password=printed.group(1))
            assert admin.text("#used-codes") == "0"
            admin.shoot("demo-admin-overview")
            assert user.dialogs == [] and user.errors == [] and admin.errors == []
        finally:
            user.close()
            admin.close()

"""``/docs`` in a real headless browser: Swagger UI renders every operation of
``/openapi.json`` and the browser never asks anything of another origin.

Chromium comes from Debian (``apt-get install chromium``; ``.ci/run`` installs it) and is
driven by Playwright for Python; Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from entrypoints.app import document

from ..servers import mjcore_serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("MJCORE_TEST_ARTIFACTS", Path(__file__).parents[1] / "artifacts"))

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_docs_renders_every_operation_with_only_same_origin_requests(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    operations = sum(len(item) for item in document("http://x")["paths"].values())
    requested: list[str] = []
    problems: list[str] = []
    with mjcore_serve({}, tmp_path) as served, sync_playwright() as playwright:
        page_answer = httpx.get(f"{served.url}/docs")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{served.url}/docs")
            page.wait_for_selector('[data-path="/v1/api/trigger/imagine"]', timeout=20_000)
            rendered = page.locator(".opblock").count()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=True)
        finally:
            browser.close()

    assert page_answer.headers["content-security-policy"].startswith("default-src 'self';")
    assert rendered == operations
    assert {_origin(url) for url in requested if not url.startswith("data:")} == {served.url}
    assert f"{served.url}/openapi.json" in requested
    assert problems == []  # a CSP refusal or a script error would show up here

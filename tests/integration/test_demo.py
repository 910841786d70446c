"""``mjcore serve --demo``: stand-in providers behind the same ports, a seeded user and
admin printed at start, a banner on every page; refused next to real credentials."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx

from adapters.demo import placeholder_png
from mjcore.media import sniff

from ..servers import MJCORE, free_port, mjcore_serve


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_the_placeholder_is_a_png_of_the_asked_size() -> None:
    data = placeholder_png("a cat", 64, 32, tiles=2)
    assert sniff(data) == "image/png"
    assert int.from_bytes(data[16:20], "big") == 64 and int.from_bytes(data[20:24], "big") == 32


def test_demo_mode_refuses_real_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
    env |= {"MJCORE_FIREWORKS_API_KEY": "fw-real-looking-key", "MJCORE_DISCORD_USER_TOKEN": "t"}
    done = subprocess.run(
        [MJCORE, "serve", "--demo", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "MJCORE_DISCORD_USER_TOKEN, MJCORE_FIREWORKS_API_KEY" in done.stderr


def test_a_demo_user_generates_and_runs_midjourney_to_an_upscale(tmp_path: Path) -> None:
    with mjcore_serve({}, tmp_path, "--demo") as served:
        printed = served.log.read_text()
        admin = re.search(r"admin pages: \S+ user 'admin', password '([^']+)'", printed)
        assert admin is not None and "user 'demo', password 'demo-password'" in printed
        with httpx.Client(base_url=served.url, timeout=30) as user:
            token = csrf_of(user.get("/web/login").text)
            form = {"csrf": token, "username": "demo", "password": "demo-password"}
            assert user.post("/web/login", data=form).status_code == 303
            home = user.get("/web/")
            assert "Demo mode" in home.text and re.search(r'id="balance">100<', home.text)
            token = csrf_of(home.text)
            made = user.post("/web/generate", data={"csrf": token, "prompt": "a lighthouse"})
            assert made.status_code == 200 and re.search(r'id="balance">99<', made.text)
            image = re.search(
                r'<figure class="result" id="result">\s*<img src="([^"]+)"', made.text
            )
            assert image is not None
            assert sniff(httpx.get(image.group(1)).content) == "image/png"

            sent = user.post("/web/midjourney", data={"csrf": token, "prompt": "a red fox"})
            assert sent.status_code == 303
            grid = _until(user, 'data-action="imagine"', "SUCCESS")
            task_id = re.search(
                r'id="job-([^"]+)" data-status="SUCCESS" data-action="imagine"', grid
            )
            assert task_id is not None
            pressed = user.post(
                "/web/midjourney/press",
                data={"csrf": token, "task_id": task_id.group(1), "button": "upscale:1"},
            )
            assert pressed.status_code == 303
            _until(user, 'data-action="upscale"', "SUCCESS")
            assert re.search(r'id="balance">97<', user.get("/web/").text)
        with httpx.Client(base_url=served.url, timeout=30) as operator:
            token = csrf_of(operator.get("/admin/login").text)
            form = {"csrf": token, "username": "admin", "password": admin.group(1)}
            assert operator.post("/admin/login", data=form).status_code == 303
            pool = operator.get("/admin/pool")
            assert "Demo mode" in pool.text and 'data-account="demo"' in pool.text


def _until(client: httpx.Client, action: str, status: str) -> str:
    deadline = time.monotonic() + 15
    while True:
        page = client.get("/web/midjourney").text
        if f'data-status="{status}" {action}' in page:
            return page
        assert time.monotonic() < deadline, page
        time.sleep(0.2)

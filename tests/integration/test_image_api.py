"""The image API end to end: real server under uvicorn, a fake Fireworks on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from entrypoints import logs
from entrypoints.bootstrap import open_store
from mjcore.clock import system_clock
from mjcore.ledger import EntryKind
from mjcore.media import sniff
from mjcore.services import accounts, codes

from ..e2e import GENEROUS_RATE_LIMITS, ledger_ok
from ..fakes.discord import FakeDiscord
from ..fakes.fireworks import FakeFireworks
from ..inprocess import InProcess, in_process
from ..servers import MJCORE

JWT_SECRET = "a-known-secret-for-these-tests-" + "0123456789abcdef" * 3
ADMIN = ("root-admin", "admin-password-42")
SECRETS: set[str] = set()  # everything secret these tests handled; none may reach the log


@pytest.fixture(scope="module")
def fireworks() -> Iterator[FakeFireworks]:
    with FakeFireworks() as fake:
        yield fake


class _Everything(logging.Handler):
    """Every log line of the module's apps, at DEBUG: the secrets test reads them all."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def logged() -> Iterator[list[str]]:
    handler, root = _Everything(), logging.getLogger()
    handler.setFormatter(logs.formatter("json"))  # every field, as the server prints them
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture
async def api(
    fireworks: FakeFireworks, discord: FakeDiscord, home: Path, logged: list[str]
) -> AsyncIterator[InProcess]:
    """The app in process, on the module's one SQLite database."""
    env = (
        fireworks.env()
        | discord.env()
        | {
            "MJCORE_JWT_SECRET": JWT_SECRET,
            "MJCORE_ADMIN_USERNAME": ADMIN[0],
            "MJCORE_ADMIN_PASSWORD": ADMIN[1],
            "MJCORE_FIREWORKS_TIMEOUT_S": "2",
        }
        | GENEROUS_RATE_LIMITS
    )
    SECRETS.update({JWT_SECRET, ADMIN[1]})
    async with in_process(env, home) as app:
        yield app


@pytest.fixture
def client(api: InProcess) -> httpx.AsyncClient:
    return api.client


def admin_auth() -> dict[str, str]:
    token = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


_names = iter(range(10**6))


async def signup(client: httpx.AsyncClient, credits_: int = 0) -> tuple[str, dict[str, str]]:
    """Register and log in a fresh user (with ``credits_`` from a code); its name and headers."""
    name, password = f"user{next(_names)}_{os.getpid()}", f"pw-{time.time_ns()}"
    SECRETS.add(password)
    registered = await client.post("/api/register", json={"username": name, "password": password})
    assert registered.json() == {"message": "注册成功", "username": name}
    login = (await client.post("/api/login", json={"username": name, "password": password})).json()
    SECRETS.add(login["token"])
    headers = {"Authorization": f"Bearer {login['token']}"}
    if credits_:
        [code] = await make_codes(client, credits_, 1)
        assert (await client.post("/api/redeem", json={"code": code}, headers=headers)).is_success
    return name, headers


async def make_codes(client: httpx.AsyncClient, credits_: int, count: int) -> list[str]:
    response = await client.post(
        "/api/admin/codes", json={"credits": credits_, "count": count}, headers=admin_auth()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "生成成功" and body["credits"] == credits_
    return list(body["codes"])


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/user", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_register_login_redeem_generate_records_and_stats_agree(
    client: httpx.AsyncClient, api: InProcess, fireworks: FakeFireworks
) -> None:
    before = (await client.get("/api/admin/stats", headers=admin_auth())).json()
    name, password = f"flow_{os.getpid()}", "correct horse battery"
    SECRETS.add(password)

    registered = await client.post("/api/register", json={"username": name, "password": password})
    login = await client.post("/api/login", json={"username": name, "password": password})
    token = login.json()["token"]
    SECRETS.add(token)
    headers = {"Authorization": f"Bearer {token}"}
    [code] = await make_codes(client, 5, 1)
    redeemed = await client.post("/api/redeem", json={"code": code.lower()}, headers=headers)
    generated = await client.post(
        "/api/generate",
        json={"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9", "seed": 12345},
        headers=headers,
    )
    image = await client.get(generated.json()["image_url"])
    records = (await client.get("/api/records", headers=headers)).json()["records"]
    after = (await client.get("/api/admin/stats", headers=admin_auth())).json()
    user = await me(client, headers)

    assert registered.status_code == 200
    assert login.json()["message"] == "登录成功"
    assert login.json()["user"] == {"username": name, "credits": 0, "totalGenerated": 0}
    assert redeemed.json() == {"message": "兑换成功", "credits": 5, "totalCredits": 5}
    body = generated.json()
    assert generated.status_code == 200, body
    assert body["message"] == "生成成功" and body["credits_remaining"] == 4
    assert body["request_id"].startswith("fw-") and body["seed"] == 12345
    assert body["image_url"].startswith(f"{api.url}/images/")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert sniff(image.content) == "image/png"
    sent = fireworks.seen()[-1]
    assert sent["path"].endswith("/models/flux-1-schnell-fp8/text_to_image")
    assert sent["headers"]["accept"] == "image/png"
    assert sent["headers"]["authorization"] == "Bearer fw-test-key"
    assert sent["body"] == {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9", "seed": 12345}
    [record] = records
    assert record == record | {
        "username": name,
        "prompt": "a lighthouse at dusk",
        "imageUrl": body["image_url"],
        "requestId": body["request_id"],
        "aspectRatio": "16:9",
        "seed": 12345,
    }
    assert abs(record["createdAt"] - time.time() * 1000) < 60_000
    assert user["credits"] == 4 and user["totalGenerated"] == 1
    assert after == {
        "totalUsers": before["totalUsers"] + 1,
        "totalRecords": before["totalRecords"] + 1,
        "totalCodes": before["totalCodes"] + 1,
        "usedCodes": before["usedCodes"] + 1,
        "totalCredits": before["totalCredits"] + 4,
    }
    admin_records = (await client.get("/api/admin/records", headers=admin_auth())).json()
    assert admin_records["records"][0]["requestId"] == body["request_id"]
    users = (await client.get("/api/admin/users", headers=admin_auth())).json()["users"]
    assert {"username": name, "credits": 4, "totalGenerated": 1}.items() <= next(
        u for u in users if u["username"] == name
    ).items()


async def test_jpeg_is_asked_for_and_served_as_jpeg(
    client: httpx.AsyncClient, fireworks: FakeFireworks
) -> None:
    _, headers = await signup(client, 1)

    response = await client.post(
        "/api/generate", json={"prompt": "a cat", "output_format": "jpeg"}, headers=headers
    )
    image = await client.get(response.json()["image_url"])

    assert fireworks.seen()[-1]["headers"]["accept"] == "image/jpeg"
    assert image.headers["content-type"] == "image/jpeg" and sniff(image.content) == "image/jpeg"
    assert response.json()["image_url"].endswith(".jpg")


@pytest.mark.parametrize(
    ("marker", "status"),
    [("[500]", 502), ("[429]", 502), ("[hang]", 504), ("[filtered]", 422), ("[malformed]", 502)],
)
async def test_each_fireworks_fault_has_its_status_and_costs_nothing(
    client: httpx.AsyncClient, api: InProcess, marker: str, status: int
) -> None:
    name, headers = await signup(client, 3)

    response = await client.post(
        "/api/generate", json={"prompt": f"a cat {marker}"}, headers=headers
    )

    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert (await me(client, headers))["credits"] == 3
    assert (await client.get("/api/records", headers=headers)).json() == {"records": []}
    store = await open_store(api.database_url)
    try:
        account = await accounts.get_account(store, name)
        async with store.unit_of_work(readonly=True) as uow:
            kinds = [e.kind for e in await uow.ledger.entries(account.id)]
    finally:
        await store.close()
    assert kinds == [EntryKind.GRANT, EntryKind.DEBIT, EntryKind.REFUND]


async def test_no_credits_is_402_and_nothing_is_asked_of_fireworks(
    client: httpx.AsyncClient, fireworks: FakeFireworks
) -> None:
    _, headers = await signup(client)
    asked = len(fireworks.seen())

    response = await client.post("/api/generate", json={"prompt": "a cat"}, headers=headers)

    assert response.status_code == 402 and set(response.json()) == {"error"}
    assert len(fireworks.seen()) == asked


def _token(claims: dict[str, Any], key: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


async def test_jwt_attacks_are_refused(client: httpx.AsyncClient, api: InProcess) -> None:
    name, headers = await signup(client)
    user_id = str(jwt.decode(headers["Authorization"][7:], JWT_SECRET, ["HS256"])["sub"])
    now = datetime.now(UTC)
    good = {
        "sub": user_id,
        "ver": 0,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(good).encode()).rstrip(b"=").decode()
    attacks = {
        "forged": _token(good, key="some-other-secret-of-enough-length"),
        "alg none": f"{header}.{payload}.",
        "HS512": _token(good, algorithm="HS512"),
        "expired": _token(good | {"exp": int((now - timedelta(seconds=5)).timestamp())}),
        "no exp": _token({"sub": user_id, "iat": good["iat"]}),
        "bad subject": _token(good | {"sub": "admin"}),
        "no version": _token({k: v for k, v in good.items() if k != "ver"}),
        "an older version": _token(good | {"ver": -1}),
        "garbage": "not.a.jwt",
    }
    assert (
        await client.get("/api/user", headers={"Authorization": f"Bearer {_token(good)}"})
    ).is_success

    for name_, token in attacks.items():
        response = await client.get("/api/user", headers={"Authorization": f"Bearer {token}"})
        assert (name_, response.status_code) == (name_, 401)
        assert set(response.json()) == {"error"}

    store = await open_store(api.database_url)
    try:
        await accounts.delete_account(store, system_clock, name)
    finally:
        await store.close()
    gone = await client.get("/api/user", headers=headers)
    assert gone.status_code == 401


async def test_wrong_name_and_wrong_password_look_the_same(client: httpx.AsyncClient) -> None:
    name, _ = await signup(client)

    wrong_password = await client.post(
        "/api/login", json={"username": name, "password": "nope-nope"}
    )
    unknown = await client.post(
        "/api/login", json={"username": "nobody_at_all", "password": "nope-nope"}
    )
    taken = await client.post("/api/register", json={"username": name, "password": "12345678"})

    assert wrong_password.status_code == unknown.status_code == 401
    assert wrong_password.json() == unknown.json()
    assert taken.status_code == 400


async def test_redemption_refusals(client: httpx.AsyncClient, api: InProcess) -> None:
    _, headers = await signup(client)
    [used] = await make_codes(client, 2, 1)
    await client.post("/api/redeem", json={"code": used}, headers=headers)
    store = await open_store(api.database_url)
    try:
        past = system_clock() - timedelta(days=1)
        [expired] = await codes.issue_codes(store, system_clock, 2, 1, expires_at=past)
    finally:
        await store.close()

    for code in (used, "ABCDEFGHJKLMNPQR", expired.code, "short", "0000OOOOIIII1111", 17):
        response = await client.post("/api/redeem", json={"code": code}, headers=headers)
        assert (code, response.status_code) == (code, 400)
        assert set(response.json()) == {"error"}
    assert (await me(client, headers))["credits"] == 2


async def test_twenty_concurrent_redemptions_of_one_code_over_http(
    client: httpx.AsyncClient, api: InProcess
) -> None:
    users = [await signup(client) for _ in range(20)]
    [code] = await make_codes(client, 7, 1)

    answers = await asyncio.gather(
        *(client.post("/api/redeem", json={"code": code}, headers=h) for _, h in users)
    )

    assert sorted(a.status_code for a in answers) == [200] + [400] * 19
    balances = [(await me(client, h))["credits"] for _, h in users]
    assert sorted(balances) == [0] * 19 + [7]
    assert await ledger_ok(api.database_url)


async def test_admin_needs_the_configured_basic_credentials(client: httpx.AsyncClient) -> None:
    wrong = base64.b64encode(f"{ADMIN[0]}:wrong".encode()).decode()
    cases = [
        {},
        {"Authorization": f"Basic {wrong}"},
        {"Authorization": "Basic !!!"},
        {"Authorization": f"Bearer {ADMIN[1]}"},
    ]
    for headers in cases:
        for method, path in [
            ("POST", "/api/admin/codes"),
            ("GET", "/api/admin/users"),
            ("GET", "/api/admin/records"),
            ("GET", "/api/admin/stats"),
        ]:
            response = await client.request(
                method, path, json={"credits": 1, "count": 1}, headers=headers
            )
            assert (path, response.status_code) == (path, 401)
            assert response.headers["www-authenticate"].startswith("Basic")


BAD_BODIES: list[tuple[str, Any]] = [
    ("/api/register", "{"),
    ("/api/register", []),
    ("/api/register", {}),
    ("/api/register", {"username": "ok_name", "password": "short"}),
    ("/api/register", {"username": "bad name", "password": "long enough"}),
    ("/api/register", {"username": "x" * 65, "password": "long enough"}),
    ("/api/register", {"username": 5, "password": "long enough"}),
    ("/api/register", {"username": "ok", "password": "p" * 2000}),
    ("/api/register", {"username": "ok", "password": "long enough", "admin": True}),
    ("/api/login", {}),
    ("/api/login", {"username": "x"}),
    ("/api/login", {"username": ["x"], "password": "y"}),
    ("/api/redeem", {}),
    ("/api/redeem", {"code": None}),
    ("/api/generate", {}),
    ("/api/generate", {"prompt": ""}),
    ("/api/generate", {"prompt": "x", "aspect_ratio": "2:1"}),
    ("/api/generate", {"prompt": "x", "output_format": "gif"}),
    ("/api/generate", {"prompt": "x", "seed": -1}),
    ("/api/generate", {"prompt": "x", "seed": "5"}),
    ("/api/generate", {"prompt": "x", "seed": 2**40}),
    ("/api/generate", {"prompt": "x", "seed": 1.5}),
    ("/api/generate", {"prompt": "x" * 2001}),
    ("/api/generate", {"prompt": "x", "steps": 4}),
    ("/api/admin/codes", {}),
    ("/api/admin/codes", {"credits": 0, "count": 1}),
    ("/api/admin/codes", {"credits": 1, "count": 0}),
    ("/api/admin/codes", {"credits": 1, "count": 1001}),
    ("/api/admin/codes", {"credits": "1", "count": 1}),
    ("/api/admin/codes", {"credits": 1, "count": 1, "expires_in_days": 0}),
]


@pytest.mark.parametrize(("path", "body"), BAD_BODIES)
async def test_bad_bodies_are_400_with_an_error(
    client: httpx.AsyncClient, path: str, body: Any
) -> None:
    _, headers = await signup(client, 1)
    if path.startswith("/api/admin"):
        headers = admin_auth()
    content = body if isinstance(body, str) else json.dumps(body)

    response = await client.post(
        path, content=content, headers=headers | {"Content-Type": "application/json"}
    )

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}
    if path == "/api/generate":
        assert (await me(client, headers))["credits"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/records?limit=0",
        "/api/records?limit=101",
        "/api/records?limit=x",
        "/api/admin/records?limit=0",
        "/api/admin/records?limit=-5",
        "/api/admin/users?limit=abc",
        "/api/admin/users?offset=-1",
    ],
)
async def test_bad_queries_are_400(client: httpx.AsyncClient, path: str) -> None:
    _, headers = await signup(client)
    if path.startswith("/api/admin"):
        headers = admin_auth()
    response = await client.get(path, headers=headers)
    assert response.status_code == 400 and set(response.json()) == {"error"}


async def test_user_endpoints_want_a_token(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/user"),
        ("POST", "/api/redeem"),
        ("POST", "/api/generate"),
        ("GET", "/api/records"),
    ]:
        response = await client.request(method, path, json={})
        assert (path, response.status_code) == (path, 401)


def _cli(api: InProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
    env["MJCORE_DATABASE_URL"] = api.database_url
    return subprocess.run(
        [MJCORE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


async def test_cli_and_registered_accounts_are_one_kind_with_one_balance(
    client: httpx.AsyncClient, api: InProcess
) -> None:
    name, headers = await signup(client, 5)
    rotated = _cli(api, "users", "rotate-key", name, "--json")
    key = json.loads(rotated.stdout)["app_key"]
    SECRETS.add(key)
    # a new key ends the sessions the old one allowed: log in again
    assert (await client.get("/api/user", headers=headers)).status_code == 401
    password = _cli(api, "users", "set-password", name, stdin="a new password 123\n")
    assert password.returncode == 0, password.stderr
    login = {"username": name, "password": "a new password 123"}
    token = (await client.post("/api/login", json=login)).json()["token"]
    SECRETS.add(token)
    headers = {"Authorization": f"Bearer {token}"}

    spent = await client.post(
        "/v1/api/trigger/imagine",
        json={"prompt": "a fox"},
        headers={"Authorization": f"Bearer {key}"},
    )
    generated = await client.post("/api/generate", json={"prompt": "a fox"}, headers=headers)
    seen_by_cli = json.loads(_cli(api, "users", "info", name, "--json").stdout)

    assert spent.status_code == 200 and generated.json()["credits_remaining"] == 3
    assert seen_by_cli["credits"] == 3 == (await me(client, headers))["credits"]

    created = _cli(api, "users", "create", f"cli_{name}", "4", "--json")
    SECRETS.add(json.loads(created.stdout)["app_key"])
    assert (
        _cli(api, "users", "set-password", f"cli_{name}", stdin="a cli password\n").returncode == 0
    )
    SECRETS.add("a cli password")
    cli_login = await client.post(
        "/api/login", json={"username": f"cli_{name}", "password": "a cli password"}
    )
    assert cli_login.json()["user"]["credits"] == 4
    SECRETS.add(cli_login.json()["token"])


async def test_a_generated_jwt_secret_is_kept_across_restarts(
    fireworks: FakeFireworks, tmp_path: Path
) -> None:
    env = fireworks.env() | {"MJCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'keep.db'}"}
    async with in_process(env, tmp_path) as first:
        client = first.client
        await client.post("/api/register", json={"username": "keeper", "password": "12345678"})
        token = (
            await client.post("/api/login", json={"username": "keeper", "password": "12345678"})
        ).json()["token"]
    async with in_process(env, tmp_path) as second:  # a restart: a new app, the same database
        response = await second.client.get(
            "/api/user", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200 and response.json()["username"] == "keeper"


async def test_kontext_models_are_submitted_and_polled(
    fireworks: FakeFireworks, tmp_path: Path
) -> None:
    env = fireworks.env("flux-kontext-pro") | {
        "MJCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
        "MJCORE_ADMIN_USERNAME": ADMIN[0],
        "MJCORE_ADMIN_PASSWORD": ADMIN[1],
    }
    async with in_process(env, tmp_path) as server:
        client = server.client
        _, headers = await signup(client, 2)
        done = await client.post(
            "/api/generate", json={"prompt": "a boat", "output_format": "jpeg"}, headers=headers
        )
        filtered = await client.post(
            "/api/generate", json={"prompt": "[filtered]"}, headers=headers
        )
        image = await client.get(done.json()["image_url"])
        left = (await me(client, headers))["credits"]

    assert done.status_code == 200, done.text
    assert sniff(image.content) == "image/jpeg"
    assert filtered.status_code == 422 and left == 1
    paths = [r["path"] for r in fireworks.seen()]
    assert any(p.endswith("/models/flux-kontext-pro") for p in paths)
    assert any(p.endswith("/models/flux-kontext-pro/get_result") for p in paths)


def test_no_secret_ever_reached_the_log(logged: list[str]) -> None:
    log = "\n".join(logged)
    assert '"path": "/api/login", "route": "/api/login", "status": 200' in log  # logins logged
    leaked = [s for s in SECRETS if s in log]
    assert len(SECRETS) > 5 and leaked == []

"""OpenAI-style image generation, driven by the official ``openai`` package, and the one
ledger that every surface (``/mj``, ``/v1/api/trigger``, ``/api``, ``/v1/images``) draws on."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from entrypoints.bootstrap import open_store
from mjcore.clock import system_clock
from mjcore.media import sniff
from mjcore.services import accounts

from ..e2e import CALLBACK_SECRET, GENEROUS_RATE_LIMITS, User, credits, ledger_kinds, ledger_ok
from ..e2e import new_user as make_user
from ..fakes.discord import FakeDiscord, listener_event
from ..fakes.fireworks import FakeFireworks
from ..inprocess import InProcess, in_process

MODEL = "flux-1-schnell-fp8"


@pytest.fixture(scope="module")
def fireworks() -> Iterator[FakeFireworks]:
    with FakeFireworks() as fake:
        yield fake


@pytest.fixture
async def app(
    discord: FakeDiscord, fireworks: FakeFireworks, home: Path
) -> AsyncIterator[InProcess]:
    env = (
        discord.env()
        | fireworks.env(MODEL)
        | GENEROUS_RATE_LIMITS
        | {
            "MJCORE_CALLBACK_SECRET": CALLBACK_SECRET,
            "MJCORE_JWT_SECRET": "openai-tests-jwt-secret-" + "0123456789abcdef" * 2,
        }
    )
    async with in_process(env, home) as running:
        yield running


def client(
    app: InProcess, key: str, retries: int = 0, sent: list[httpx.Request] | None = None
) -> openai.AsyncOpenAI:
    """The official client against the app in this process (``sent``: every request it made)."""

    async def record(request: httpx.Request) -> None:
        if sent is not None:
            sent.append(request)

    transport = httpx.ASGITransport(app=app.app)
    http = httpx.AsyncClient(
        transport=transport, base_url=app.url, event_hooks={"request": [record]}
    )
    return openai.AsyncOpenAI(
        base_url=f"{app.url}/v1",
        api_key=key,
        max_retries=retries,
        # the app in this process; openai's stubs name another httpx build's class
        http_client=http,  # type: ignore[arg-type]
    )


async def test_the_openai_client_generates_an_image_as_a_url_and_as_b64_json(
    app: InProcess,
) -> None:
    user = await make_user(app.database_url, 10)
    async with client(app, user.key) as oa:
        as_url = await oa.images.generate(
            model=MODEL, prompt="a lighthouse", size="1792x1024", response_format="url"
        )
        as_b64 = await oa.images.generate(prompt="a lighthouse", response_format="b64_json")

    [first] = as_url.data or []
    assert first.url is not None and first.url.startswith(f"{app.url}/images/")
    image = await app.client.get(first.url)
    assert image.status_code == 200 and sniff(image.content) == "image/png"
    [second] = as_b64.data or []
    assert second.b64_json is not None and sniff(base64.b64decode(second.b64_json)) == "image/png"
    assert as_url.created > 0
    assert await credits(app.database_url, user) == 10 - 2


async def test_the_size_picks_the_nearest_aspect_ratio(
    app: InProcess, fireworks: FakeFireworks
) -> None:
    user = await make_user(app.database_url, 10)
    sizes = {"1792x1024": "16:9", "1024x1792": "9:16", "1024x1024": "1:1", "1536x1024": "4:3"}
    async with client(app, user.key) as oa:
        for size, ratio in sizes.items():
            marker = f"size {secrets.token_hex(4)}"
            await oa.images.generate(prompt=marker, size=size)
            [sent] = [r["body"] for r in fireworks.seen() if r["body"].get("prompt") == marker]
            assert sent["aspect_ratio"] == ratio, size


async def test_n_images_are_charged_one_each(app: InProcess) -> None:
    user = await make_user(app.database_url, 5)
    async with client(app, user.key) as oa:
        made = await oa.images.generate(prompt="two foxes", n=2)
    images = made.data or []
    assert len(images) == 2 and images[0].url != images[1].url
    assert await credits(app.database_url, user) == 5 - 2


async def test_a_partial_failure_refunds_exactly_the_failed_images(app: InProcess) -> None:
    user = await make_user(app.database_url, 5)
    prompt = f"half of them fail [every2nd500] {uuid.uuid4()}"
    async with client(app, user.key) as oa:
        made = await oa.images.generate(prompt=prompt, n=2)
    assert len(made.data or []) == 1
    assert await credits(app.database_url, user) == 5 - 1
    kinds = [k.value for k in await ledger_kinds(app.database_url, user)]
    assert kinds.count("debit") == 2 and kinds.count("refund") == 1
    assert await ledger_ok(app.database_url)


async def test_no_credit_is_a_rate_limit_error_insufficient_quota_and_never_retried(
    app: InProcess, fireworks: FakeFireworks
) -> None:
    user = await make_user(app.database_url, 1)
    before, sent = len(fireworks.seen()), list[httpx.Request]()
    async with client(app, user.key, retries=2, sent=sent) as oa:  # the client's default
        with pytest.raises(openai.RateLimitError) as raised:
            await oa.images.generate(prompt="three foxes", n=2)
    assert raised.value.code == "insufficient_quota" and raised.value.status_code == 429
    assert isinstance(raised.value.body, dict) and raised.value.body["type"] == "insufficient_quota"
    assert len(sent) == 1  # x-should-retry: false
    assert len(fireworks.seen()) == before  # refused before anything was charged or asked
    assert await credits(app.database_url, user) == 1


async def test_a_bad_key_is_an_authentication_error(app: InProcess) -> None:
    async with client(app, "not-a-key") as oa:
        with pytest.raises(openai.AuthenticationError) as raised:
            await oa.images.generate(prompt="a fox")
        with pytest.raises(openai.AuthenticationError):
            await oa.models.list()
    assert raised.value.code == "invalid_api_key"


async def test_bad_input_and_upstream_failures_get_openai_errors_and_refunds(
    app: InProcess,
) -> None:
    user = await make_user(app.database_url, 5)
    async with client(app, user.key) as oa:
        with pytest.raises(openai.BadRequestError):
            await oa.images.generate(prompt="a fox", size="12x")
        with pytest.raises(openai.BadRequestError):
            await oa.images.generate(prompt="a fox", n=9)
        with pytest.raises(openai.BadRequestError):
            await oa.images.generate(prompt="a fox", extra_body={"colour": "red"})
        with pytest.raises(openai.NotFoundError):
            await oa.images.generate(prompt="a fox", model="dall-e-3")
        with pytest.raises(openai.BadRequestError) as filtered:
            await oa.images.generate(prompt="a fox [filtered]")
        with pytest.raises(openai.InternalServerError) as upstream:
            await oa.images.generate(prompt="a fox [500]")
    assert filtered.value.code == "content_policy_violation"
    assert upstream.value.status_code == 502
    raw = await app.client.post(
        "/v1/images/generations", content=b"[", headers={"Authorization": f"Bearer {user.key}"}
    )
    assert raw.status_code == 400 and set(raw.json()["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }
    assert await credits(app.database_url, user) == 5  # the two failures were refunded
    assert await ledger_ok(app.database_url)


async def test_models_lists_the_configured_image_model(app: InProcess) -> None:
    user = await make_user(app.database_url, 1)
    async with client(app, user.key) as oa:
        listed = await oa.models.list()
    assert [m.id for m in listed.data] == [MODEL]


async def _jwt_user(app: InProcess, credits_: int) -> tuple[User, dict[str, str]]:
    """An account on every surface: a password for /api, an app key for the others."""
    name, password = f"all_{secrets.token_hex(4)}", "password-1234"
    assert (
        await app.client.post("/api/register", json={"username": name, "password": password})
    ).status_code == 200
    store = await open_store(app.database_url, 2)
    try:
        keyed = await accounts.rotate_key(store, system_clock, name)
        await accounts.grant_credits(store, system_clock, name, credits_)
    finally:
        await store.close()
    login = await app.client.post("/api/login", json={"username": name, "password": password})
    jwt = {"Authorization": f"Bearer {login.json()['token']}"}
    return User(keyed.app_key, keyed.account.id, name), jwt


async def test_every_surface_draws_on_one_balance_and_refunds_once_on_failure(
    app: InProcess, discord: FakeDiscord
) -> None:
    user, jwt = await _jwt_user(app, 10)
    mj_headers = {"mj-api-secret": user.key}
    http = app.client

    mj = await http.post("/mj/submit/imagine", json={"prompt": "a red fox"}, headers=mj_headers)
    trigger = await http.post(
        "/v1/api/trigger/imagine", json={"prompt": "a red fox"}, headers=user.headers
    )
    generated = await http.post("/api/generate", json={"prompt": "a red fox"}, headers=jwt)
    async with client(app, user.key) as oa:
        await oa.images.generate(prompt="a red fox")
    assert (mj.json()["code"], trigger.status_code, generated.status_code) == (1, 200, 200)
    assert await credits(app.database_url, user) == 10 - 4

    # both Midjourney jobs fail at Midjourney, the failure reported twice: refunded once each
    for task_id in (mj.json()["result"], trigger.json()["task_id"]):
        task = await http.get(f"/v1/api/trigger/task/{task_id}", headers=user.headers)
        trigger_id = task.json()["trigger_id"]
        content = f"**<#{trigger_id}#>a red fox** - (Stopped)"
        for _ in range(2):
            event = listener_event(discord, "error", trigger_id, 77, content)
            posted = await http.post(
                "/v1/api/trigger/midjourney/result",
                json=event,
                headers={"X-Callback-Secret": CALLBACK_SECRET},
            )
            assert posted.status_code == 200
    failing = await http.post("/api/generate", json={"prompt": "a red fox [500]"}, headers=jwt)
    async with client(app, user.key) as oa:
        with pytest.raises(openai.InternalServerError):
            await oa.images.generate(prompt="a red fox [500]")
    assert failing.status_code == 502
    assert await credits(app.database_url, user) == 10 - 2
    kinds = [k.value for k in await ledger_kinds(app.database_url, user)]
    assert kinds.count("debit") == 6 and kinds.count("refund") == 4
    assert await ledger_ok(app.database_url)

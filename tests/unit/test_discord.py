"""The Discord adapter against httpx.MockTransport: payloads, retries, errors, uploads."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from attrs import evolve

from adapters.discord import DiscordConfig, DiscordMidjourney
from mjcore.discord_accounts import AccountRejected, DiscordAccount, Mode, Secret
from mjcore.errors import ProviderRejected, ProviderUnavailable, SubmissionUncertain
from mjcore.midjourney import MjAction
from mjcore.tasks import Provider, Task

from ..support import rendered

CONFIG = DiscordConfig(
    api_url="https://discord.test/api/v9",
    application_id="936929561302675456",
    imagine_id="938956540159881230",
    imagine_version="11",
    describe_id="1092492867185950852",
    describe_version="22",
    session_id="sess",
)


ACCOUNT = DiscordAccount("default", "1", "2", Secret("tok"))


def _task(action: MjAction, **params: object) -> Task:
    return Task(
        task_id="t",
        account_id=1,
        provider=Provider.MIDJOURNEY,
        action=action,
        prompt="a cat",
        cost=1,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        params=params,
        trigger_id="1234",
    )


def _provider(handler: httpx.MockTransport, **config: Any) -> DiscordMidjourney:
    return DiscordMidjourney(httpx.AsyncClient(transport=handler), evolve(CONFIG, **config))


async def test_imagine_payload_is_the_discord_clients() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    await _provider(httpx.MockTransport(handler)).submit(_task(MjAction.IMAGINE), ACCOUNT)

    [request] = seen
    body = json.loads(request.content)
    assert request.url == "https://discord.test/api/v9/interactions"
    assert request.headers["authorization"] == "tok"
    assert body["type"] == 2 and body["session_id"] == "sess" and body["nonce"].isdigit()
    assert body["data"] == {
        "version": "11",
        "id": "938956540159881230",
        "name": "imagine",
        "type": 1,
        "options": [{"type": 3, "name": "prompt", "value": "<#1234#>a cat"}],
        "attachments": [],
    }


async def test_network_errors_are_retried_twice_then_reported() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ProviderUnavailable, match="after 3 attempts"):
        await _provider(httpx.MockTransport(handler)).submit(_task(MjAction.IMAGINE), ACCOUNT)
    assert attempts == 3


async def test_a_retry_that_gets_through_succeeds() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.ConnectTimeout("no connection", request=request)
        return httpx.Response(204)

    await _provider(httpx.MockTransport(handler)).submit(_task(MjAction.IMAGINE), ACCOUNT)
    assert attempts == 2


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError]
)
async def test_a_request_that_may_have_reached_discord_is_never_sent_again(
    error: type[httpx.TransportError],
) -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise error("sent, then nothing", request=request)

    with pytest.raises(SubmissionUncertain, match="not sent again"):
        await _provider(httpx.MockTransport(handler)).submit(_task(MjAction.IMAGINE), ACCOUNT)
    assert attempts == 1


def _rate_limited(retry_after: float) -> httpx.Response:
    return httpx.Response(
        429,
        headers={"Retry-After": str(round(retry_after)), "X-RateLimit-Scope": "user"},
        json={
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": False,
        },
    )


async def test_a_429_is_waited_out_then_sent_once_more(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    attempts = 0

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return _rate_limited(1.0) if attempts == 1 else httpx.Response(204)

    monkeypatch.setattr("adapters.discord.asyncio.sleep", sleep)
    await _provider(httpx.MockTransport(handler)).submit(_task(MjAction.IMAGINE), ACCOUNT)
    assert attempts == 2
    assert [round(s, 2) for s in slept] == [1.0]


async def test_a_429_asking_too_long_a_wait_is_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError("no waiting expected")

    monkeypatch.setattr("adapters.discord.asyncio.sleep", sleep)
    transport = httpx.MockTransport(lambda request: _rate_limited(64.57))
    with pytest.raises(ProviderRejected, match="HTTP 429"):
        await _provider(transport).submit(_task(MjAction.IMAGINE), ACCOUNT)


async def test_an_http_error_is_not_retried() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return httpx.Response(400, json={"message": "Invalid Form Body", "code": 50035})

    with pytest.raises(ProviderRejected, match="HTTP 400"):
        await _provider(httpx.MockTransport(handler)).submit(_task(MjAction.IMAGINE), ACCOUNT)
    assert attempts == 1


async def test_a_refused_token_is_the_accounts_fault_not_the_jobs() -> None:
    for status in (401, 403):
        transport = httpx.MockTransport(lambda request, status=status: httpx.Response(status))
        with pytest.raises(AccountRejected, match=f"account default's token: HTTP {status}"):
            await _provider(transport).submit(_task(MjAction.IMAGINE), ACCOUNT)


async def test_a_429_delays_that_accounts_next_requests_and_no_one_elses() -> None:
    seen: list[tuple[str, float]] = []
    other = DiscordAccount("other", "1", "3", Secret("tok-2"))

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["authorization"], time.monotonic()))
        if request.headers["authorization"] == "tok" and len(seen) == 1:
            return httpx.Response(429, json={"retry_after": 0.3, "global": False})
        return httpx.Response(204)

    provider = _provider(httpx.MockTransport(handler))
    start = time.monotonic()
    await provider.submit(_task(MjAction.IMAGINE), ACCOUNT)  # waits 0.3 s, then sent
    await asyncio.gather(
        provider.submit(_task(MjAction.IMAGINE), ACCOUNT),
        provider.submit(_task(MjAction.IMAGINE), other),
    )

    assert [token for token, _ in seen] == ["tok", "tok", "tok", "tok-2"] or [
        token for token, _ in seen
    ] == ["tok", "tok", "tok-2", "tok"]
    assert seen[1][1] - start >= 0.29


async def test_an_account_in_relax_mode_says_so_unless_the_prompt_does() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["data"]["options"][0]["value"])
        return httpx.Response(204)

    relaxed = evolve(ACCOUNT, mode=Mode.RELAX)
    provider = _provider(httpx.MockTransport(handler))
    await provider.submit(_task(MjAction.IMAGINE), relaxed)
    await provider.submit(evolve(_task(MjAction.IMAGINE), prompt="a cat --fast"), relaxed)
    await provider.submit(_task(MjAction.IMAGINE), ACCOUNT)

    assert sent == ["<#1234#>a cat --relax", "<#1234#>a cat --fast", "<#1234#>a cat"]


async def test_upload_is_two_steps_and_the_put_carries_no_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(
                200,
                json={
                    "attachments": [
                        {
                            "id": "0",
                            "upload_url": "https://bucket.test/u/1234.png?upload_id=x",
                            "upload_filename": "u/1234.png",
                        }
                    ]
                },
            )
        return httpx.Response(200)

    provider = _provider(httpx.MockTransport(handler))
    upload = await provider.upload(ACCOUNT, "1234.png", b"png!", "image/png")

    post, put = seen
    assert post.url == "https://discord.test/api/v9/channels/2/attachments"
    assert json.loads(post.content) == {
        "files": [{"filename": "1234.png", "file_size": 4, "id": "0"}]
    }
    assert put.method == "PUT" and put.content == b"png!" and "authorization" not in put.headers
    assert (upload.upload_filename, upload.upload_url) == (
        "u/1234.png",
        "https://bucket.test/u/1234.png?upload_id=x",
    )


async def test_an_upload_answer_without_slots_is_a_provider_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"nope": 1}))
    with pytest.raises(ProviderRejected):
        await _provider(transport).upload(ACCOUNT, "1.png", b"x", "image/png")


async def test_finding_16_discords_words_are_logged_without_the_token_and_not_shown_to_clients(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = "mfa.user-token-that-must-never-leak"
    echo = {"message": f"Invalid Form Body (you sent {token})", "code": 50035}
    transport = httpx.MockTransport(lambda request: httpx.Response(400, json=echo))
    with pytest.raises(ProviderRejected) as refused:
        await _provider(transport).submit(
            _task(MjAction.IMAGINE), evolve(ACCOUNT, user_token=Secret(token))
        )

    assert str(refused.value) == "Discord refused the request: HTTP 400"
    logged = rendered(r for r in caplog.records if r.name == "mjcore.discord")
    assert "Invalid Form Body" in logged and token not in logged
    assert '"status": 400' in logged and '"operation": "interaction"' in logged

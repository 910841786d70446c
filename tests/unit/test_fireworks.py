"""The Fireworks adapter against httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json

import attrs
import httpx
import pytest

from adapters.fireworks import FireworksConfig, FireworksImages
from mjcore.errors import ContentFiltered, ProviderRejected, ProviderTimeout, ProviderUnavailable
from mjcore.ports import ImageRequest

from ..fakes.images import JPEG, png
from ..support import rendered

SYNC = FireworksConfig("key", "https://fw.test/inference/v1", "flux-1-schnell-fp8", 5.0)
KONTEXT = FireworksConfig(
    "key", "https://fw.test/inference/v1", "flux-kontext-pro", 5.0, 0.0, not_found_grace_s=0.0
)
ASK = ImageRequest("a cat", "1:1", "png", 7)


def _images(handler: object, config: FireworksConfig = SYNC) -> FireworksImages:
    transport = httpx.MockTransport(handler)  # type: ignore[arg-type]
    return FireworksImages(httpx.AsyncClient(transport=transport), config)


async def test_text_to_image_sends_the_documented_request_and_reads_the_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        headers = {"Seed": "7", "Finish-Reason": "SUCCESS", "X-Request-Id": "r-1"}
        return httpx.Response(200, content=png(), headers=headers)

    image = await _images(handler).generate(ASK)

    [request] = seen
    assert str(request.url) == (
        "https://fw.test/inference/v1/workflows/accounts/fireworks/models/"
        "flux-1-schnell-fp8/text_to_image"
    )
    assert request.headers["accept"] == "image/png"
    assert request.headers["authorization"] == "Bearer key"
    assert json.loads(request.content) == {"prompt": "a cat", "aspect_ratio": "1:1", "seed": 7}
    assert (image.content_type, image.seed, image.request_id) == ("image/png", 7, "r-1")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(500, json={"error": {"message": "boom"}}), ProviderRejected),
        (httpx.Response(429, json={"detail": "slow down"}), ProviderRejected),
        (
            httpx.Response(200, content=png(), headers={"Finish-Reason": "CONTENT_FILTERED"}),
            ContentFiltered,
        ),
        (httpx.Response(200, json={"id": "x"}), ProviderRejected),
        (httpx.Response(200, content=b""), ProviderRejected),
    ],
)
async def test_faults_become_provider_errors(response: httpx.Response, error: type) -> None:
    with pytest.raises(error):
        await _images(lambda request: response).generate(ASK)


async def test_finding_16_upstream_words_go_to_the_log_redacted_and_never_to_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = "fw_3ZxkQ8secretSECRET9"
    echo = f"model overloaded; you sent Authorization: Bearer {key} and api_key={key}"
    answer = httpx.Response(500, json={"error": {"message": echo}})
    config = attrs.evolve(SYNC, api_key=key)
    with pytest.raises(ProviderRejected) as refused:
        await _images(lambda request: answer, config).generate(ASK)

    assert str(refused.value) == "Fireworks answered HTTP 500"  # our words, for the client
    [record] = [r for r in caplog.records if r.name == "mjcore.fireworks"]
    logged = rendered([record])
    assert "model overloaded" in logged and '"status": 500' in logged
    assert key not in logged and "SECRET" not in logged


async def test_a_hang_past_the_timeout_is_a_timeout() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    config = FireworksConfig("key", SYNC.base_url, SYNC.model, 0.2)
    with pytest.raises(ProviderTimeout):
        await _images(handler, config).generate(ASK)


async def test_network_errors_and_missing_key_are_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ProviderUnavailable):
        await _images(refuse).generate(ASK)
    unconfigured = FireworksConfig(None, SYNC.base_url, SYNC.model, 1.0)
    with pytest.raises(ProviderUnavailable, match="not configured"):
        await _images(refuse, unconfigured).generate(ASK)


async def test_kontext_submits_polls_and_downloads_the_sample() -> None:
    polls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal polls
        path = request.url.path
        if path.endswith("/flux-kontext-pro"):
            body = json.loads(request.content)
            assert body["output_format"] == "jpeg"
            return httpx.Response(200, json={"request_id": "job-1"})
        if path.endswith("/get_result"):
            polls += 1
            assert json.loads(request.content) == {"id": "job-1"}
            if polls < 3:
                return httpx.Response(200, json={"id": "job-1", "status": "Pending"})
            sample = {"sample": "https://storage.test/fw/job-1.jpeg"}
            return httpx.Response(200, json={"id": "job-1", "status": "Ready", "result": sample})
        assert "authorization" not in request.headers  # the signed URL needs no key
        return httpx.Response(200, content=JPEG)

    image = await _images(handler, KONTEXT).generate(ImageRequest("a boat", "1:1", "jpeg"))

    assert polls == 3 and image.content_type == "image/jpeg" and image.request_id == "job-1"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("Request Moderated", ContentFiltered),
        ("Content Moderated", ContentFiltered),
        ("Error", ProviderRejected),
        ("Task not found", ProviderRejected),
    ],
)
async def test_kontext_terminal_statuses(status: str, error: type) -> None:
    """After the grace period, that is: see the next test."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/get_result"):
            return httpx.Response(200, json={"id": "j", "status": status})
        return httpx.Response(200, json={"request_id": "j"})

    with pytest.raises(error):
        await _images(handler, KONTEXT).generate(ASK)


async def test_a_job_not_found_just_after_submission_is_polled_again() -> None:
    answers = [
        httpx.Response(404, json={"error": "Task not found"}),
        httpx.Response(200, json={"id": "j", "status": "Task not found"}),
        httpx.Response(200, json={"id": "j", "status": "Pending"}),
        httpx.Response(
            200, json={"id": "j", "status": "Ready", "result": {"sample": "https://s.test/j.png"}}
        ),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/get_result"):
            return answers.pop(0)
        if request.url.host == "s.test":
            return httpx.Response(200, content=png())
        return httpx.Response(200, json={"request_id": "j"})

    config = attrs.evolve(KONTEXT, not_found_grace_s=5.0)
    image = await _images(handler, config).generate(ASK)
    assert image.request_id == "j" and answers == []


async def test_a_job_still_not_found_after_the_grace_period_fails() -> None:
    polls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal polls
        if request.url.path.endswith("/get_result"):
            polls += 1
            return httpx.Response(200, json={"id": "j", "status": "Task not found"})
        return httpx.Response(200, json={"request_id": "j"})

    config = attrs.evolve(KONTEXT, poll_interval_s=0.01, not_found_grace_s=0.1)
    with pytest.raises(ProviderRejected, match="Task not found"):
        await _images(handler, config).generate(ASK)
    assert 3 <= polls <= 20

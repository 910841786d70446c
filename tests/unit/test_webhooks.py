"""Webhooks without a server: the signature against the spec's vector, the retry schedule,
which transitions are events, and which callback URLs are allowed."""

from __future__ import annotations

import asyncio
import json
import random
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from adapters.webhooks import Targets, signature
from entrypoints.callbacks import render
from mjcore.errors import InvalidInput
from mjcore.tasks import Provider, Task, TaskStatus
from mjcore.webhooks import (
    Delivery,
    HookStyle,
    RetryPolicy,
    WebhookEvent,
    event_for,
    new_secret,
    secret_bytes,
)

# the Standard Webhooks specification's test vector
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TIME, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_signature_matches_the_specification_vector() -> None:
    assert signature(secret_bytes(SPEC_SECRET), SPEC_ID, SPEC_TIME, SPEC_BODY) == SPEC_SIGNATURE


def test_a_new_secret_signs_what_the_reference_library_verifies() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret_bytes(secret)) == 32
    now = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature(secret_bytes(secret), "msg_1", now, '{"a":1}'),
    }
    assert Webhook(secret).verify('{"a":1}', headers) == {"a": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify('{"a":1}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify('{"a":2}', headers)


def test_the_waits_grow_from_ten_seconds_to_a_day_over_ten_attempts() -> None:
    exact = RetryPolicy(rng=_NoJitter())
    waits = [exact.wait_after(n) for n in range(1, 11)]

    assert waits[0] == timedelta(seconds=10)
    assert waits[8] == timedelta(days=1)
    assert waits[9] is None  # the tenth attempt was the last
    seconds = [w.total_seconds() for w in waits[:9] if w is not None]
    assert seconds == sorted(seconds)
    assert sum(seconds) < 2 * 86400


def test_each_wait_is_jittered_by_at_most_a_fifth() -> None:
    policy = RetryPolicy(rng=random.Random(3))
    seen = {policy.wait_after(2) for _ in range(200)}
    exact = RetryPolicy(rng=_NoJitter()).wait_after(2)
    assert exact is not None
    assert len(seen) > 100
    assert all(w is not None and 0.8 * exact <= w <= 1.2 * exact for w in seen)


class _NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return 1.0


def _task(status: TaskStatus, progress: int = 0) -> Task:
    return Task(
        task_id="t1",
        account_id=1,
        provider=Provider.MIDJOURNEY,
        action="imagine",
        prompt="a red fox",
        cost=1,
        status=status,
        progress=progress,
        created_at=NOW,
        trigger_id="1234",
    )


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        (_task(TaskStatus.SUBMITTED), _task(TaskStatus.IN_PROGRESS), WebhookEvent.STARTED),
        (_task(TaskStatus.IN_PROGRESS), _task(TaskStatus.IN_PROGRESS, 31), WebhookEvent.PROGRESS),
        (_task(TaskStatus.IN_PROGRESS, 31), _task(TaskStatus.IN_PROGRESS, 31), None),
        (_task(TaskStatus.NOT_START), _task(TaskStatus.SUBMITTED), None),
        (_task(TaskStatus.SUBMITTED), _task(TaskStatus.SUCCESS), WebhookEvent.SUCCEEDED),
        (_task(TaskStatus.IN_PROGRESS), _task(TaskStatus.FAILURE), WebhookEvent.FAILED),
    ],
)
def test_which_transitions_are_events(
    before: Task, after: Task, event: WebhookEvent | None
) -> None:
    assert event_for(before, after) is event


def test_the_body_is_the_task_view_with_the_event_in_two_vocabularies() -> None:
    task = _task(TaskStatus.IN_PROGRESS, 31)
    delivery = Delivery(
        "msg_1", "t1", WebhookEvent.PROGRESS, "https://h", HookStyle.MJCORE, NOW, NOW
    )

    body: dict[str, Any] = json.loads(render(delivery, task))

    assert body["event"] == "task.progress" and body["type"] == "generating"
    assert body["task_id"] == "t1" and body["trigger_id"] == "1234"
    assert (body["status"], body["progress"], body["prompt"]) == ("IN_PROGRESS", 31, "a red fox")


def _resolving_to(address: str) -> Any:
    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return getaddrinfo


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/hook",
        "https://localhost/hook",
        "http://hooks.example/plain-http",
        "ftp://hooks.example/x",
        "https:///no-host",
        "not a url",
        "https://" + "a" * 64 + ".example/label-too-long-for-idna",
    ],
)
async def test_private_and_odd_targets_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        await Targets().check(url)


async def test_a_name_is_judged_by_what_it_resolves_to(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", _resolving_to("93.184.215.14"))
    await Targets().check("https://hooks.example/in")

    monkeypatch.setattr(loop, "getaddrinfo", _resolving_to("10.0.0.1"))
    with pytest.raises(InvalidInput, match="public"):
        await Targets().check("https://hooks.example/in")


async def test_the_operator_may_allow_private_targets_and_plain_http() -> None:
    await Targets(allow_private=True).check("http://127.0.0.1:8080/hook")
    with pytest.raises(InvalidInput):
        await Targets(allow_private=True).check("ftp://127.0.0.1/hook")

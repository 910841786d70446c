"""Contract: Idempotency-Keys on every store: one holder per key and account, the answer
kept only by its holder, expiry, and a key guarding a debit under real concurrency."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from mjcore.errors import InsufficientCredits
from mjcore.idempotency import (
    Idempotency,
    IdempotencyInProgress,
    IdempotencyMismatch,
    KeyRecord,
    KeyState,
    Replay,
)
from mjcore.ports import Store
from mjcore.pricing import Prices
from mjcore.services import accounts, tasks
from mjcore.services.idempotency import Claim, Keys
from mjcore.tasks import Provider, Task

from ..support import FakeClock

DAY = timedelta(days=1)
KEY = "retry-me-7"


def _record(
    clock: FakeClock, claim_id: str, *, account_id: int = 1, digest: str = "h1", key: str = KEY
) -> KeyRecord:
    return KeyRecord(
        account_id=account_id,
        key=key,
        request_hash=digest,
        claim_id=claim_id,
        state=KeyState.RUNNING,
        created_at=clock(),
        expires_at=clock() + DAY,
    )


async def _claim(store: Store, record: KeyRecord) -> KeyRecord | None:
    async with store.unit_of_work() as uow:
        held = await uow.idempotency.claim(record)
        await uow.commit()
    return held


async def _complete(store: Store, claim_id: str, status: int = 200, body: str = "{}") -> bool:
    async with store.unit_of_work() as uow:
        kept = await uow.idempotency.complete(1, KEY, claim_id, status, body)
        await uow.commit()
    return kept


async def test_the_first_claim_holds_the_key_and_only_it_keeps_the_answer(
    store: Store, clock: FakeClock
) -> None:
    assert await _claim(store, _record(clock, "first")) is None

    held = await _claim(store, _record(clock, "second", digest="other"))
    assert held is not None
    assert (held.claim_id, held.state, held.request_hash) == ("first", KeyState.RUNNING, "h1")
    assert held.expires_at == clock() + DAY

    assert not await _complete(store, "second")
    assert await _complete(store, "first", 201, '{"code":0}')

    done = await _claim(store, _record(clock, "third"))
    assert done is not None
    assert (done.state, done.response_status, done.response_body) == (
        KeyState.DONE,
        201,
        '{"code":0}',
    )


async def test_keys_belong_to_one_account(store: Store, clock: FakeClock) -> None:
    assert await _claim(store, _record(clock, "a", account_id=1)) is None
    assert await _claim(store, _record(clock, "b", account_id=2)) is None


async def test_an_expired_key_is_free_again_and_purged(store: Store, clock: FakeClock) -> None:
    assert await _claim(store, _record(clock, "old")) is None
    clock.advance(days=1, seconds=1)

    assert await _claim(store, _record(clock, "new")) is None
    assert not await _complete(store, "old")  # its holder lost it with its day

    clock.advance(days=1, seconds=1)
    async with store.unit_of_work() as uow:
        purged = await uow.idempotency.purge(clock())
        await uow.commit()
    assert purged == 1
    assert not await _complete(store, "new")


async def test_of_many_claiming_one_key_at_once_exactly_one_holds_it(
    store: Store, clock: FakeClock
) -> None:
    results = await asyncio.gather(*(_claim(store, _record(clock, f"c{i}")) for i in range(20)))

    assert results.count(None) == 1
    holders = {r.claim_id for r in results if r is not None}
    assert len(holders) == 1


# -- a key guarding a debit ----------------------------------------------------------------


async def _reserve(store: Store, clock: FakeClock, keys: Keys, claim: Claim) -> Task:
    draft = tasks.draft_task(
        clock,
        Prices(),
        account_id=claim.account_id,
        provider=Provider.MIDJOURNEY,
        action="imagine",
        prompt="a red fox",
    )
    return await tasks.reserve_task(store, draft, guard=keys.guard(claim, draft.task_id))


async def test_fifty_concurrent_requests_with_one_key_pay_once(
    store: Store, clock: FakeClock
) -> None:
    account = (await accounts.create_account(store, clock, "racer", 100)).account
    keys = Keys(store, clock)
    asked = Idempotency("same-key", "digest-of-the-body")

    results = await asyncio.gather(
        *(_reserve(store, clock, keys, Claim(account.id, asked)) for _ in range(50)),
        return_exceptions=True,
    )

    accepted = [r for r in results if isinstance(r, Task)]
    assert len(accepted) == 1, results
    assert all(isinstance(r, IdempotencyInProgress) for r in results if r not in accepted)
    assert (await accounts.get_account_by_id(store, account.id)).credits == 100 - accepted[0].cost
    page = await tasks.list_tasks(store, account.id, limit=100)
    assert [t.task_id for t in page.tasks] == [accepted[0].task_id]


async def test_a_known_answer_is_replayed_and_another_body_refused(
    store: Store, clock: FakeClock
) -> None:
    account = (await accounts.create_account(store, clock, "replay", 100)).account
    keys = Keys(store, clock)
    first = Claim(account.id, Idempotency("k", "body-1"))
    await _reserve(store, clock, keys, first)
    assert await keys.remember(first, 200, '{"code":0,"result":"t1"}')

    with pytest.raises(Replay) as replay:
        await _reserve(store, clock, keys, Claim(account.id, Idempotency("k", "body-1")))
    assert replay.value.record.response_body == '{"code":0,"result":"t1"}'
    with pytest.raises(IdempotencyMismatch):
        await _reserve(store, clock, keys, Claim(account.id, Idempotency("k", "body-2")))
    assert (await accounts.get_account_by_id(store, account.id)).credits == 99


async def test_a_request_that_failed_before_its_debit_leaves_the_key_free(
    store: Store, clock: FakeClock
) -> None:
    poor = (await accounts.create_account(store, clock, "poor", 0)).account
    keys = Keys(store, clock)
    claim = Claim(poor.id, Idempotency("k", "body"))

    with pytest.raises(InsufficientCredits):
        await _reserve(store, clock, keys, claim)  # the claim rolled back with the debit

    assert not await keys.remember(claim, 402, "{}")
    async with store.unit_of_work() as uow:
        assert await uow.idempotency.claim(_record(clock, "x", account_id=poor.id, key="k")) is None

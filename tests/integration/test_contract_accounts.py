"""Contract: accounts and the operator's counter verbs, on every store."""

from __future__ import annotations

from typing import Any, cast

import pytest

from mjcore.accounts import Account, digest_app_key
from mjcore.errors import (
    AccountNotFound,
    AccountUnavailable,
    BadCredentials,
    InvalidAmount,
    InvalidAppKey,
    InvalidInput,
    InvalidUserName,
    TaskNotFound,
    UserNameTaken,
)
from mjcore.ledger import EntryKind
from mjcore.passwords import Hasher
from mjcore.ports import Store
from mjcore.pricing import Prices
from mjcore.services import accounts, reports
from mjcore.services.tasks import draft_task, reserve_task
from mjcore.tasks import Provider, Task

from ..support import FakeClock


async def test_create_account_grants_tokens_through_the_ledger(
    store: Store, clock: FakeClock
) -> None:
    created = await accounts.create_account(store, clock, "testuser", 500)

    assert created.account.token_total == 500
    assert created.account.token_use == 0
    async with store.unit_of_work(readonly=True) as uow:
        entries = await uow.ledger.entries(created.account.id)
    assert [(e.kind, e.delta) for e in entries] == [(EntryKind.GRANT, 500)]


async def test_only_the_app_key_digest_is_stored(store: Store, clock: FakeClock) -> None:
    created = await accounts.create_account(store, clock, "alice", 5)

    assert len(created.app_key) >= 32
    stored = await accounts.get_account(store, "alice")
    assert stored.app_key_digest == digest_app_key(created.app_key)
    assert created.app_key not in repr(stored)


async def test_authenticate_by_key_finds_the_account(store: Store, clock: FakeClock) -> None:
    created = await accounts.create_account(store, clock, "alice", 5)

    found = await accounts.authenticate_key(store, created.app_key)

    assert found.id == created.account.id


async def test_unknown_key_is_refused(store: Store, clock: FakeClock) -> None:
    await accounts.create_account(store, clock, "alice", 5)

    with pytest.raises(InvalidAppKey):
        await accounts.authenticate_key(store, "not-a-key")


async def test_key_of_disabled_or_deleted_account_is_refused(
    store: Store, clock: FakeClock
) -> None:
    bob = await accounts.create_account(store, clock, "bob", 5)
    carol = await accounts.create_account(store, clock, "carol", 5)

    await accounts.set_disabled(store, clock, "bob", True)
    await accounts.delete_account(store, clock, "carol")

    for key in (bob.app_key, carol.app_key):
        with pytest.raises(AccountUnavailable):
            await accounts.authenticate_key(store, key)
    await accounts.set_disabled(store, clock, "bob", False)
    assert (await accounts.authenticate_key(store, bob.app_key)).user_name == "bob"


class _CountingStore:
    """A store that counts the units of work opened on it."""

    def __init__(self, store: Store) -> None:
        self.store, self.opened = store, 0

    def unit_of_work(self, *, readonly: bool = False) -> Any:
        self.opened += 1
        return self.store.unit_of_work(readonly=readonly)


async def test_a_task_is_read_with_its_owners_key_in_one_look(
    store: Store, clock: FakeClock
) -> None:
    alice = await accounts.create_account(store, clock, "alice", 5)
    bob = await accounts.create_account(store, clock, "bob", 5)
    draft = draft_task(
        clock, Prices(), account_id=alice.account.id, provider=Provider.FIREWORKS, action="generate"
    )
    task = await reserve_task(store, draft)
    digest = digest_app_key(alice.app_key)

    async with store.unit_of_work(readonly=True) as uow:
        mine = await uow.accounts.by_key_digest_with_task(digest, task.task_id)
        missing = await uow.accounts.by_key_digest_with_task(digest, "no-such-task")
        theirs = await uow.accounts.by_key_digest_with_task(
            digest_app_key(bob.app_key), task.task_id
        )
        nobody = await uow.accounts.by_key_digest_with_task("not-a-digest", task.task_id)

    def ids(found: tuple[Account | None, Task | None]) -> tuple[int | None, Task | None]:
        return (None if found[0] is None else found[0].id), found[1]

    assert ids(mine) == (alice.account.id, task)
    assert mine[0] == await accounts.authenticate_key(store, alice.app_key)
    assert ids(missing) == (alice.account.id, None)
    assert ids(theirs) == (bob.account.id, None)  # another's task is not shown
    assert nobody == (None, None)
    counted = _CountingStore(store)
    assert await accounts.task_by_key(cast(Store, counted), alice.app_key, task.task_id) == task
    assert counted.opened == 1  # the key and the task in one read
    for key, task_id in ((bob.app_key, task.task_id), (alice.app_key, "x" * 5000)):
        with pytest.raises(TaskNotFound):
            await accounts.task_by_key(store, key, task_id)
    with pytest.raises(InvalidAppKey):
        await accounts.task_by_key(store, "not-a-key", task.task_id)
    await accounts.set_disabled(store, clock, "alice", True)
    with pytest.raises(AccountUnavailable):
        await accounts.task_by_key(store, alice.app_key, task.task_id)


async def test_user_names_are_unique(store: Store, clock: FakeClock) -> None:
    await accounts.create_account(store, clock, "alice", 5)

    with pytest.raises(UserNameTaken):
        await accounts.create_account(store, clock, "alice", 7)
    assert len(await accounts.list_accounts(store)) == 1


@pytest.mark.parametrize("name", ["", "a" * 65, "has space", "ünï", "semi;colon"])
async def test_invalid_user_names_are_refused(store: Store, clock: FakeClock, name: str) -> None:
    with pytest.raises(InvalidUserName):
        await accounts.create_account(store, clock, name, 5)
    assert await accounts.list_accounts(store) == []


@pytest.mark.parametrize("tokens", [-1, 2**31])
async def test_token_counts_out_of_range_are_refused(
    store: Store, clock: FakeClock, tokens: int
) -> None:
    with pytest.raises(InvalidAmount):
        await accounts.create_account(store, clock, "alice", tokens)


async def test_update_tokens_writes_an_adjust_entry(store: Store, clock: FakeClock) -> None:
    created = await accounts.create_account(store, clock, "alice", 500)

    raised = await accounts.update_tokens(store, clock, created.app_key, 800)
    lowered = await accounts.update_tokens(store, clock, created.app_key, 300)

    assert (raised.token_total, lowered.token_total) == (800, 300)
    async with store.unit_of_work(readonly=True) as uow:
        entries = await uow.ledger.entries(created.account.id)
    assert [(e.kind, e.delta) for e in entries] == [
        (EntryKind.GRANT, 500),
        (EntryKind.ADJUST, 300),
        (EntryKind.ADJUST, -500),
    ]
    assert (await reports.verify_ledger(store)).ok


async def test_reset_usage_writes_a_reset_entry(store: Store, clock: FakeClock) -> None:
    created = await accounts.create_account(store, clock, "alice", 10)
    for _ in range(3):
        await reserve_task(
            store,
            draft_task(
                clock,
                Prices(),
                account_id=created.account.id,
                provider=Provider.MIDJOURNEY,
                action="imagine",
            ),
        )

    reset = await accounts.reset_usage(store, clock, created.app_key)

    assert (reset.token_use, reset.credits) == (0, 10)
    async with store.unit_of_work(readonly=True) as uow:
        entries = await uow.ledger.entries(created.account.id)
    assert entries[-1].kind is EntryKind.RESET and entries[-1].delta == 3
    assert (await reports.verify_ledger(store)).ok


async def test_counter_verbs_on_an_unknown_key_are_not_found(
    store: Store, clock: FakeClock
) -> None:
    with pytest.raises(AccountNotFound):
        await accounts.update_tokens(store, clock, "nope", 5)
    with pytest.raises(AccountNotFound):
        await accounts.reset_usage(store, clock, "nope")
    with pytest.raises(AccountNotFound):
        await accounts.get_account_by_key(store, "nope")


async def test_finding_12_a_new_password_or_key_moves_the_token_version_on(
    store: Store, clock: FakeClock
) -> None:
    created = await accounts.create_account(store, clock, "alice", 5)
    assert created.account.token_version == 0

    after_password = await accounts.set_password(
        store, clock, Hasher(), "alice", "a new password 1"
    )
    after_key = await accounts.rotate_key(store, clock, "alice")
    after_disable = await accounts.set_disabled(store, clock, "alice", True)

    assert after_password.token_version == 1
    assert after_key.account.token_version == 2
    assert after_disable.token_version == 2  # disabling ends sessions by itself


@pytest.mark.parametrize("name", ["alice ", " alice", "ALICE", "alice\t"])
async def test_finding_18_a_name_that_is_not_exactly_the_accounts_cannot_log_in(
    store: Store, clock: FakeClock, name: str
) -> None:
    """MariaDB compares 'alice ' equal to 'alice' (PAD SPACE): names are checked first."""
    hasher = Hasher()
    await accounts.register(store, clock, hasher, "alice", "the right password")
    with pytest.raises(BadCredentials):
        await accounts.login(store, hasher, name, "the right password")
    assert (await accounts.login(store, hasher, "alice", "the right password")).user_name == "alice"


async def test_update_tokens_below_what_was_used_is_refused(store: Store, clock: FakeClock) -> None:
    created = await accounts.create_account(store, clock, "alice", 10)
    for _ in range(4):
        await reserve_task(
            store,
            draft_task(
                clock,
                Prices(),
                account_id=created.account.id,
                provider=Provider.FIREWORKS,
                action="generate",
            ),
        )

    with pytest.raises(InvalidAmount, match="balance would be -1"):
        await accounts.update_tokens(store, clock, created.app_key, 3)
    with pytest.raises(InvalidAmount, match="below the 4 tokens already used"):
        await accounts.set_tokens(store, clock, "alice", 0)
    exact = await accounts.set_tokens(store, clock, "alice", 4)

    assert (exact.token_total, exact.credits) == (4, 0)
    assert (await reports.verify_ledger(store)).ok


async def test_set_tokens_and_grant_act_by_name_through_the_ledger(
    store: Store, clock: FakeClock
) -> None:
    created = await accounts.create_account(store, clock, "alice", 10)

    granted = await accounts.grant_credits(store, clock, "alice", 5)
    adjusted = await accounts.set_tokens(store, clock, "alice", 40)

    assert (granted.token_total, adjusted.token_total) == (15, 40)
    async with store.unit_of_work(readonly=True) as uow:
        entries = await uow.ledger.entries(created.account.id)
    assert [(e.kind, e.delta, e.reference) for e in entries] == [
        (EntryKind.GRANT, 10, "account:create"),
        (EntryKind.GRANT, 5, "cli:grant"),
        (EntryKind.ADJUST, 25, "cli:set-tokens"),
    ]
    assert (await reports.verify_ledger(store)).ok


async def test_grant_is_refused_out_of_range_and_for_missing_accounts(
    store: Store, clock: FakeClock
) -> None:
    await accounts.create_account(store, clock, "alice", accounts.MAX_TOKENS - 1)
    await accounts.create_account(store, clock, "gone", 0)
    await accounts.delete_account(store, clock, "gone")

    for amount in (0, -1, accounts.MAX_TOKENS + 1):
        with pytest.raises(InvalidAmount):
            await accounts.grant_credits(store, clock, "alice", amount)
    with pytest.raises(InvalidAmount, match="the most an account can hold"):
        await accounts.grant_credits(store, clock, "alice", 2)
    for name in ("nobody", "gone"):
        with pytest.raises(AccountNotFound):
            await accounts.grant_credits(store, clock, name, 1)
        with pytest.raises(AccountNotFound):
            await accounts.set_tokens(store, clock, name, 1)
    assert (await accounts.grant_credits(store, clock, "alice", 1)).token_total == (
        accounts.MAX_TOKENS
    )


async def test_an_account_is_found_by_name_or_by_key_but_never_guessed(
    store: Store, clock: FakeClock
) -> None:
    alice = await accounts.create_account(store, clock, "alice", 1)
    # a name that is another account's key: legal, and ambiguous
    twin = await accounts.create_account(store, clock, alice.app_key, 1)

    assert (await accounts.find_account(store, "alice")).id == alice.account.id
    assert (await accounts.find_account(store, twin.app_key)).id == twin.account.id
    with pytest.raises(InvalidInput, match="act by name"):
        await accounts.find_account(store, alice.app_key)
    with pytest.raises(AccountNotFound):
        await accounts.find_account(store, "nobody")

"""Account use cases: create, authenticate, look up, and the operator's counter verbs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import define, evolve, field, frozen

from ..accounts import USER_NAME, Account, check_user_name, digest_app_key, new_app_key
from ..clock import Clock
from ..codes import Redemption
from ..errors import (
    AccountNotFound,
    AccountUnavailable,
    BadCredentials,
    InvalidAmount,
    InvalidAppKey,
    InvalidInput,
    TaskNotFound,
)
from ..limits import Whole
from ..passwords import DECOY_HASH, Hasher, check_password
from ..ports import AccountChanges, NewAccount, Store, TaskQuery, UnitOfWork
from ..tasks import TASK_ID, Task, TaskStatus
from . import codes, credits
from .jobs import NO_OPTIONS, Extras, JobOptions

DEFAULT_TOKENS = 100
MAX_TOKENS = 2**31 - 1  # the seed's int(11) counters


@frozen
class CreatedAccount:
    """A new account and its app key, which is shown this once and never stored."""

    account: Account
    app_key: str


TOKENS = Whole("token total", 0, MAX_TOKENS)
GRANT = Whole("credits", 1, MAX_TOKENS)


async def create_account(
    store: Store,
    clock: Clock,
    user_name: str,
    tokens: int = DEFAULT_TOKENS,
    *,
    password_hash: str | None = None,
) -> CreatedAccount:
    """Create an account holding ``tokens`` credits, granted through the ledger."""
    check_user_name(user_name)
    TOKENS.check(tokens)
    app_key = new_app_key()
    now = clock()
    async with store.unit_of_work() as uow:
        account = await uow.accounts.add(
            NewAccount(user_name, digest_app_key(app_key), 0, now, password_hash)
        )
        await credits.grant(uow, account.id, tokens, "account:create", now)
        account = evolve(account, token_total=tokens)
        await uow.commit()
    return CreatedAccount(account, app_key)


async def authenticate_key(store: Store, app_key: str) -> Account:
    """The active account holding ``app_key``.

    Raises :class:`InvalidAppKey` for an unknown key and :class:`AccountUnavailable`
    for the key of a disabled or deleted account.
    """
    return _key_holder(await _by_key(store, app_key))


async def task_by_key(store: Store, app_key: str, task_id: str) -> Task:
    """One task of the active account holding ``app_key``, key and task read
    together; refused as :func:`authenticate_key` refuses, else :class:`TaskNotFound`."""
    if not TASK_ID.allows(task_id):  # no such id can exist: only the key to check
        _key_holder(await _by_key(store, app_key))
        raise TaskNotFound(f"no task {task_id!r}")
    async with store.unit_of_work(readonly=True) as uow:
        account, task = await uow.accounts.by_key_digest_with_task(digest_app_key(app_key), task_id)
    _key_holder(account)
    if task is None:
        raise TaskNotFound(f"no task {task_id}")
    return task


async def _by_key(store: Store, app_key: str) -> Account | None:
    async with store.unit_of_work(readonly=True) as uow:
        return await uow.accounts.by_key_digest(digest_app_key(app_key))


def _key_holder(account: Account | None) -> Account:
    """The account an app key found, if it may act."""
    if account is None:
        raise InvalidAppKey("no account has this app key")
    if not account.active:
        raise AccountUnavailable(f"account {account.user_name!r} is disabled or deleted")
    return account


async def get_account(store: Store, user_name: str) -> Account:
    async with store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.by_name(user_name)
    if account is None:
        raise AccountNotFound(f"no account named {user_name!r}")
    return account


async def get_account_by_id(store: Store, account_id: int) -> Account:
    async with store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.get(account_id)
    if account is None:
        raise AccountNotFound(f"no account with id {account_id}")
    return account


async def get_account_by_key(store: Store, app_key: str) -> Account:
    """The account holding ``app_key``, active or not."""
    async with store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.by_key_digest(digest_app_key(app_key))
    if account is None:
        raise AccountNotFound("no account has this app key")
    return account


async def list_accounts(store: Store, limit: int = 1000, offset: int = 0) -> Sequence[Account]:
    async with store.unit_of_work(readonly=True) as uow:
        return await uow.accounts.list(limit, offset)


async def _locked_by_key(uow: UnitOfWork, app_key: str) -> Account:
    found = await uow.accounts.by_key_digest(digest_app_key(app_key))
    account = found and await uow.accounts.get(found.id, for_update=True)
    if account is None:
        raise AccountNotFound("no account has this app key")
    return account


async def _locked_live(uow: UnitOfWork, user_name: str) -> Account:
    account = await uow.accounts.by_name(user_name, for_update=True)
    if account is None or account.deleted_at is not None:
        raise AccountNotFound(f"no account named {user_name!r}")
    return account


async def find_account(store: Store, name_or_key: str) -> Account:
    """The account named ``name_or_key``, else the one holding it as its app key.

    A text that names one account and is another's key is refused as ambiguous
    (:class:`InvalidInput`) rather than guessed.
    """
    async with store.unit_of_work(readonly=True) as uow:
        by_name = await uow.accounts.by_name(name_or_key)
        by_key = await uow.accounts.by_key_digest(digest_app_key(name_or_key))
    if by_name is not None and by_key is not None and by_name.id != by_key.id:
        raise InvalidInput(
            f"{name_or_key!r} is the name of {by_name.user_name!r} and the app key of"
            f" {by_key.user_name!r}: act by name"
        )
    account = by_name or by_key
    if account is None:
        raise AccountNotFound(f"no account has the name or app key {name_or_key!r}")
    return account


async def update_tokens(store: Store, clock: Clock, app_key: str, total: int) -> Account:
    """Set ``token_total`` of the account holding ``app_key`` (an adjust entry)."""
    TOKENS.check(total)
    async with store.unit_of_work() as uow:
        locked = await _locked_by_key(uow, app_key)
        account = await _adjust(uow, clock, locked, total, "cli:update-tokens")
        await uow.commit()
    return account


async def set_tokens(store: Store, clock: Clock, user_name: str, total: int) -> Account:
    """Set ``token_total`` of the live account ``user_name`` (an adjust entry)."""
    TOKENS.check(total)
    async with store.unit_of_work() as uow:
        locked = await _locked_live(uow, user_name)
        account = await _adjust(uow, clock, locked, total, "cli:set-tokens")
        await uow.commit()
    return account


async def _adjust(
    uow: UnitOfWork, clock: Clock, account: Account, total: int, reference: str
) -> Account:
    """Set the locked ``account``'s total; refused below its usage (a negative balance)."""
    if total < account.token_use:
        raise InvalidAmount(
            f"a token total of {total} is below the {account.token_use} tokens already used"
            f" (the balance would be {total - account.token_use}); reset the usage first"
        )
    await credits.adjust(uow, account.id, total - account.token_total, reference, clock())
    return await _reread(uow, account.id)


async def grant_credits(store: Store, clock: Clock, user_name: str, credits_: int) -> Account:
    """Add ``credits_`` to the live account ``user_name`` (a grant entry)."""
    GRANT.check(credits_)
    async with store.unit_of_work() as uow:
        account = await _locked_live(uow, user_name)
        if account.token_total + credits_ > MAX_TOKENS:
            raise InvalidAmount(
                f"{account.user_name!r} holds {account.token_total}: adding {credits_} would"
                f" pass the most an account can hold ({MAX_TOKENS})"
            )
        await credits.grant(uow, account.id, credits_, "cli:grant", clock())
        updated = await _reread(uow, account.id)
        await uow.commit()
    return updated


async def reset_usage(store: Store, clock: Clock, app_key: str) -> Account:
    """Set ``token_use`` to 0 for the account holding ``app_key`` (a reset entry)."""
    async with store.unit_of_work() as uow:
        account = await _reset(uow, clock, await _locked_by_key(uow, app_key))
        await uow.commit()
    return account


async def reset_usage_of(store: Store, clock: Clock, account_id: int) -> Account:
    """Set ``token_use`` to 0 (a reset entry): the credits it used come back."""
    async with store.unit_of_work() as uow:
        account = await uow.accounts.get(account_id, for_update=True)
        if account is None:
            raise AccountNotFound(f"no account with id {account_id}")
        account = await _reset(uow, clock, account)
        await uow.commit()
    return account


async def _reset(uow: UnitOfWork, clock: Clock, account: Account) -> Account:
    await credits.reset(uow, account.id, account.token_use, "cli:reset-usage", clock())
    return await _reread(uow, account.id)


async def _reread(uow: UnitOfWork, account_id: int) -> Account:
    updated = await uow.accounts.get(account_id)
    assert updated is not None
    return updated


async def _update_flags(
    store: Store, clock: Clock, user_name: str, *, end_sessions: bool = False, **flags: Any
) -> Account:
    """Change flags of the live account ``user_name`` in one unit of work; the result.

    ``end_sessions`` moves the account's token version on: every JWT issued before stops
    working (a new password or key must end what the old one let in).
    """
    async with store.unit_of_work() as uow:
        account = await _locked_live(uow, user_name)
        if end_sessions:
            flags["token_version"] = account.token_version + 1
        await uow.accounts.update_flags(account.id, clock(), AccountChanges(**flags))
        updated = await _reread(uow, account.id)
        await uow.commit()
    return updated


async def set_disabled(store: Store, clock: Clock, user_name: str, disabled: bool) -> Account:
    """Disable (or re-enable) an account; its key and tokens stop working while disabled."""
    return await _update_flags(store, clock, user_name, disabled=disabled)


async def delete_account(store: Store, clock: Clock, user_name: str) -> Account:
    """Soft-delete: the row and its ledger stay (the invariant keeps holding), access ends."""
    return await _update_flags(store, clock, user_name, deleted_at=clock())


async def kept_secret(store: Store, name: str, candidate: str) -> str:
    """The secret stored under ``name``; ``candidate`` becomes it if there is none yet.

    Every process that starts at the same time ends up with the same value.
    """
    async with store.unit_of_work() as uow:
        value = await uow.settings.put_if_absent(name, candidate)
        await uow.commit()
    return value


async def rotate_key(store: Store, clock: Clock, user_name: str) -> CreatedAccount:
    """Give the account a new app key (the old one stops working); shown this once."""
    app_key = new_app_key()
    account = await _update_flags(
        store, clock, user_name, end_sessions=True, app_key_digest=digest_app_key(app_key)
    )
    return CreatedAccount(account, app_key)


async def set_password(
    store: Store, clock: Clock, hasher: Hasher, user_name: str, password: str
) -> Account:
    """Let the account log in to the image API with this password."""
    check_password(password)
    password_hash = await hasher.hash(password)
    return await _update_flags(
        store, clock, user_name, end_sessions=True, password_hash=password_hash
    )


async def register(
    store: Store, clock: Clock, hasher: Hasher, user_name: str, password: str
) -> Account:
    """A new account with a password and no credits (it gets an app key too, unshown)."""
    check_user_name(user_name)  # before paying for the hash
    check_password(password)
    password_hash = await hasher.hash(password)
    created = await create_account(store, clock, user_name, 0, password_hash=password_hash)
    return created.account


async def login(store: Store, hasher: Hasher, user_name: str, password: str) -> Account:
    """The active account with this name and password, else :class:`BadCredentials`.

    An unknown name, an account without a password and a wrong password cost the
    same scrypt and raise the same error, so neither the answer nor its timing tells
    which names exist. The hash runs in a worker thread (:class:`~mjcore.passwords.Hasher`).
    """
    exact = USER_NAME.allows(user_name)  # "alice " is not alice (MariaDB pads; we do not)
    async with store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.by_name(user_name) if exact else None
    stored = account.password_hash if account is not None and account.password_hash else None
    matches = await hasher.verify(password, stored or DECOY_HASH)
    if account is None or stored is None or not matches or not account.active:
        raise BadCredentials("wrong user name or password")
    return account


@frozen
class Profile:
    """An account as its owner sees it."""

    account: Account
    generated: int  # successful jobs


@define
class AccountService:
    """What a customer does with their account, on either surface."""

    store: Store
    clock: Clock
    hasher: Hasher
    extras: Extras = field(factory=Extras)  # Idempotency-Keys for redemptions

    async def authenticate_key(self, app_key: str) -> Account:
        return await authenticate_key(self.store, app_key)

    async def task_by_key(self, app_key: str, task_id: str) -> Task:
        return await task_by_key(self.store, app_key, task_id)

    async def active(self, account_id: int) -> Account | None:
        """The account if it exists and may act (a JWT's subject, say)."""
        async with self.store.unit_of_work(readonly=True) as uow:
            account = await uow.accounts.get(account_id)
        return account if account is not None and account.active else None

    async def register(self, user_name: str, password: str) -> Account:
        return await register(self.store, self.clock, self.hasher, user_name, password)

    async def login(self, user_name: str, password: str) -> Profile:
        account = await login(self.store, self.hasher, user_name, password)
        return await self.profile(account)

    async def profile(self, account: Account) -> Profile:
        async with self.store.unit_of_work(readonly=True) as uow:
            generated = await uow.tasks.count(TaskQuery(account.id, TaskStatus.SUCCESS))
        return Profile(account, generated)

    async def rotate_key(self, account: Account) -> CreatedAccount:
        """A new app key for the account (shown once); its older JWTs stop working."""
        return await rotate_key(self.store, self.clock, account.user_name)

    async def redeem(
        self, account_id: int, code: str, options: JobOptions = NO_OPTIONS
    ) -> Redemption:
        guard = self.extras.guard(options)
        return await codes.redeem_code(self.store, self.clock, account_id, code, guard)

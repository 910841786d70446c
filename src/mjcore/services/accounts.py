"""Account use cases: create, authenticate, look up, and the operator's counter verbs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import define, frozen

from ..accounts import Account, check_user_name, digest_app_key, new_app_key
from ..clock import Clock
from ..codes import Redemption
from ..errors import AccountNotFound, AccountUnavailable, BadCredentials, InvalidAppKey
from ..ledger import EntryKind, LedgerEntry
from ..limits import Whole
from ..passwords import DECOY_HASH, Hasher, check_password
from ..ports import NewAccount, Store, TaskQuery, UnitOfWork
from ..tasks import TaskStatus
from . import codes

DEFAULT_TOKENS = 100
MAX_TOKENS = 2**31 - 1  # the seed's int(11) counters


@frozen
class CreatedAccount:
    """A new account and its app key, which is shown this once and never stored."""

    account: Account
    app_key: str


TOKENS = Whole("token total", 0, MAX_TOKENS)


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
            NewAccount(user_name, digest_app_key(app_key), tokens, now, password_hash)
        )
        if tokens:
            await uow.ledger.append(
                LedgerEntry(account.id, tokens, EntryKind.GRANT, "account:create", now)
            )
        await uow.commit()
    return CreatedAccount(account, app_key)


async def authenticate_key(store: Store, app_key: str) -> Account:
    """The active account holding ``app_key``.

    Raises :class:`InvalidAppKey` for an unknown key and :class:`AccountUnavailable`
    for the key of a disabled or deleted account.
    """
    async with store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.by_key_digest(digest_app_key(app_key))
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


async def update_tokens(store: Store, clock: Clock, app_key: str, total: int) -> Account:
    """Set ``token_total``; the difference is written to the ledger as an adjustment."""
    TOKENS.check(total)
    now = clock()
    async with store.unit_of_work() as uow:
        account = await _locked_by_key(uow, app_key)
        delta = total - account.token_total
        if delta:
            await uow.accounts.change_total(account.id, delta, now)
            await uow.ledger.append(
                LedgerEntry(account.id, delta, EntryKind.ADJUST, "cli:update-tokens", now)
            )
        updated = await uow.accounts.get(account.id)
        await uow.commit()
    assert updated is not None
    return updated


async def reset_usage(store: Store, clock: Clock, app_key: str) -> Account:
    """Set ``token_use`` to 0; the credits it gives back are written as a reset entry."""
    now = clock()
    async with store.unit_of_work() as uow:
        account = await _locked_by_key(uow, app_key)
        if account.token_use:
            await uow.accounts.change_use(account.id, -account.token_use, now)
            await uow.ledger.append(
                LedgerEntry(account.id, account.token_use, EntryKind.RESET, "cli:reset-usage", now)
            )
        updated = await uow.accounts.get(account.id)
        await uow.commit()
    assert updated is not None
    return updated


async def _update_flags(store: Store, clock: Clock, user_name: str, **flags: Any) -> Account:
    """Change flags of the live account ``user_name`` in one unit of work; the result."""
    async with store.unit_of_work() as uow:
        account = await uow.accounts.by_name(user_name, for_update=True)
        if account is None or account.deleted_at is not None:
            raise AccountNotFound(f"no account named {user_name!r}")
        await uow.accounts.update_flags(account.id, clock(), **flags)
        updated = await uow.accounts.get(account.id)
        await uow.commit()
    assert updated is not None
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
    account = await _update_flags(store, clock, user_name, app_key_digest=digest_app_key(app_key))
    return CreatedAccount(account, app_key)


async def set_password(
    store: Store, clock: Clock, hasher: Hasher, user_name: str, password: str
) -> Account:
    """Let the account log in to the image API with this password."""
    check_password(password)
    password_hash = await hasher.hash(password)
    return await _update_flags(store, clock, user_name, password_hash=password_hash)


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
    async with store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.by_name(user_name) if isinstance(user_name, str) else None
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

    async def authenticate_key(self, app_key: str) -> Account:
        return await authenticate_key(self.store, app_key)

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

    async def redeem(self, account_id: int, code: str) -> Redemption:
        return await codes.redeem_code(self.store, self.clock, account_id, code)

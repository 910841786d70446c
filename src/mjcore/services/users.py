"""The image API's users: register with a password, log in. Same accounts as the CLI's."""

from __future__ import annotations

from ..accounts import Account
from ..clock import Clock
from ..errors import BadCredentials
from ..passwords import DECOY_HASH, check_password, hash_password, verify_password
from ..ports import Store
from .accounts import create_account


async def register(store: Store, clock: Clock, user_name: str, password: str) -> Account:
    """A new account with a password and no credits (it gets an app key too, unshown)."""
    check_password(password)
    created = await create_account(
        store, clock, user_name, 0, password_hash=hash_password(password)
    )
    return created.account


async def login(store: Store, user_name: str, password: str) -> Account:
    """The active account with this name and password, else :class:`BadCredentials`.

    An unknown name, an account without a password and a wrong password cost the
    same scrypt and raise the same error, so neither the answer nor its timing tells
    which names exist.
    """
    async with store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.by_name(user_name) if isinstance(user_name, str) else None
    stored = account.password_hash if account is not None and account.password_hash else None
    matches = verify_password(password, stored or DECOY_HASH)
    if account is None or stored is None or not matches or not account.active:
        raise BadCredentials("wrong user name or password")
    return account

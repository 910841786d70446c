"""Helpers for end-to-end tests: accounts and balances straight from the server's database."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
from attrs import frozen

from entrypoints.bootstrap import open_store
from mjcore.clock import system_clock
from mjcore.ledger import EntryKind
from mjcore.services import accounts, reports

CALLBACK_SECRET = "listener-callback-secret"
"""What the test servers use as MJCORE_CALLBACK_SECRET (the HTTP callback needs one)."""
GENEROUS_RATE_LIMITS = {
    f"MJCORE_{name}": "100000/minute"
    for name in (
        "LOGIN_RATE_PER_ADDRESS",
        "LOGIN_RATE_PER_NAME",
        "REGISTER_RATE_PER_ADDRESS",
        "REGISTER_RATE_PER_NAME",
        "ADMIN_FAILURE_RATE_PER_ADDRESS",
        "UPLOAD_RATE_PER_KEY",
    )
}
"""For servers whose tests make many accounts and logins from one address (the limits
themselves are tested in test_security_edge.py)."""


@frozen
class User:
    key: str
    account_id: int
    name: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def new_user(database_url: str, tokens: int = 10) -> User:
    store = await open_store(database_url, 2)
    try:
        name = f"u_{secrets.token_hex(5)}"
        created = await accounts.create_account(store, system_clock, name, tokens)
    finally:
        await store.close()
    return User(created.app_key, created.account.id, name)


async def credits(database_url: str, user: User) -> int:
    store = await open_store(database_url, 2)
    try:
        return (await accounts.get_account_by_id(store, user.account_id)).credits
    finally:
        await store.close()


async def ledger_kinds(database_url: str, user: User) -> list[EntryKind]:
    store = await open_store(database_url, 2)
    try:
        async with store.unit_of_work(readonly=True) as uow:
            return [e.kind for e in await uow.ledger.entries(user.account_id)]
    finally:
        await store.close()


async def ledger_ok(database_url: str) -> bool:
    store = await open_store(database_url, 2)
    try:
        return (await reports.verify_ledger(store)).ok
    finally:
        await store.close()


async def wait_for(
    client: httpx.AsyncClient,
    user: User,
    task_id: str,
    predicate: Any,
) -> dict[str, Any]:
    """Poll GET /task until ``predicate(task)`` holds (15 s at most); return the task."""
    task: dict[str, Any] = {}
    try:
        async with asyncio.timeout(15):
            while True:
                response = await client.get(f"/v1/api/trigger/task/{task_id}", headers=user.headers)
                task = response.json()
                if predicate(task):
                    return task
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"task never reached the state; last seen {task}") from None

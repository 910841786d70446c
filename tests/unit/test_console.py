"""The admin console's use cases on the in-memory store: search, per-day counts, verify."""

from __future__ import annotations

from datetime import date

import pytest

from adapters.demo import DemoImages
from adapters.memory import MemoryStore
from mjcore.errors import AccountNotFound, InvalidInput
from mjcore.ports import ImageRequest, StoredImage
from mjcore.pricing import Prices
from mjcore.services.accounts import create_account
from mjcore.services.console import AdminConsole
from mjcore.services.images import ImageService
from mjcore.tasks import TaskStatus

from ..support import FakeClock


class KeptImages:
    """An image store that only counts."""

    def __init__(self) -> None:
        self.saved = 0

    async def save(self, data: bytes, content_type: str) -> str:
        self.saved += 1
        return f"http://x/images/{self.saved}.png"

    async def load(self, name: str) -> StoredImage | None:
        return None


async def test_days_count_generations_spent_and_granted_per_day() -> None:
    store, clock = MemoryStore(), FakeClock()
    console = AdminConsole(store, clock)
    images = ImageService(store, clock, Prices(), DemoImages(), KeptImages())
    alice = (await create_account(store, clock, "alice", 5)).account
    clock.advance(days=1)
    await images.generate(alice.id, ImageRequest("a cat", "1:1", "png", None))
    await images.generate(alice.id, ImageRequest("a dog", "1:1", "png", None))
    await console.grant("alice", 3)
    days = await console.days(3)
    assert [d.day for d in days] == [date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 2)]
    assert [(d.generations, d.spent, d.granted) for d in days] == [(0, 0, 0), (0, 0, 5), (2, 2, 3)]
    with pytest.raises(InvalidInput):
        await console.days(0)


async def test_users_are_found_by_part_of_their_name_and_changed_by_name() -> None:
    store, clock = MemoryStore(), FakeClock()
    console = AdminConsole(store, clock)
    for name in ("alice", "Malice", "bob"):
        await create_account(store, clock, name, 1)
    assert [p.account.user_name for p in await console.find_users("ALI")] == ["alice", "Malice"]
    disabled = await console.set_disabled("bob", True)
    assert disabled.disabled and not disabled.active
    with pytest.raises(AccountNotFound):
        await console.grant("nobody", 1)
    checked = await console.verify()
    assert checked.ok and checked.ledger.accounts_checked == 3


async def test_tasks_filter_by_user_and_status_and_a_failed_one_is_refunded_once() -> None:
    store, clock = MemoryStore(), FakeClock()
    console = AdminConsole(store, clock)
    images = ImageService(store, clock, Prices(), DemoImages(), KeptImages())
    alice = (await create_account(store, clock, "alice", 2)).account
    await create_account(store, clock, "bob", 2)
    made = await images.generate(alice.id, ImageRequest("a cat", "1:1", "png", 7))
    page = await console.tasks(user_name="alice", status=TaskStatus.SUCCESS)
    assert [t.task_id for t in page.tasks] == [made.task.task_id] and page.total == 1
    assert (await console.tasks(user_name="bob")).total == 0
    ended = await console.fail(made.task.task_id, "already done")
    assert ended.status is TaskStatus.SUCCESS  # an ended task is left as it is
    assert (await console.verify()).ok

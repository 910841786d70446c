"""Image generation in the core: several images for one request, the nearest aspect ratio."""

from __future__ import annotations

import itertools

import pytest
from attrs import define, field

from adapters.memory import MemoryStore
from mjcore.clock import system_clock
from mjcore.errors import InsufficientCredits, InvalidInput, ProviderError
from mjcore.ports import GeneratedImage, ImageRequest, StoredImage
from mjcore.pricing import Prices
from mjcore.services import accounts, reports
from mjcore.services.images import Generated, ImageService, aspect_ratio_of

REQUEST = ImageRequest("a fox", "1:1", "png")


@define
class Generator:
    """Fails the calls whose number (from 1) is in ``failing``."""

    failing: set[int] = field(factory=set)
    calls: itertools.count[int] = field(factory=lambda: itertools.count(1))

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        if next(self.calls) in self.failing:
            raise ProviderError("upstream said no")
        return GeneratedImage(b"\x89PNG\r\n\x1a\n", "image/png", "req-1", 7)


class Images:
    async def save(self, data: bytes, content_type: str) -> str:
        return "http://x/images/a.png"

    async def load(self, name: str) -> StoredImage | None:
        return None


async def _service(
    credits_: int, failing: frozenset[int] = frozenset()
) -> tuple[ImageService, int]:
    store = MemoryStore()
    created = await accounts.create_account(store, system_clock, "alice", credits_)
    generator = Generator(set(failing))
    service = ImageService(store, system_clock, Prices(), generator, Images())
    return service, created.account.id


async def _balance(service: ImageService, account_id: int) -> int:
    return (await accounts.get_account_by_id(service.store, account_id)).credits


@pytest.mark.parametrize(
    ("width", "height", "ratio"),
    [(1024, 1024, "1:1"), (1792, 1024, "16:9"), (1024, 1792, "9:16"), (1536, 1024, "4:3"),
     (1024, 1536, "3:4"), (2560, 1080, "21:9"), (256, 256, "1:1")],
)  # fmt: skip
def test_a_size_becomes_the_nearest_aspect_ratio(width: int, height: int, ratio: str) -> None:
    assert aspect_ratio_of(width, height) == ratio


async def test_n_images_are_n_debits() -> None:
    service, account = await _service(5)
    made = await service.generate_many(account, REQUEST, 3)
    assert [type(m) for m in made] == [Generated] * 3
    assert await _balance(service, account) == 2


async def test_a_failed_image_is_refunded_and_the_others_are_kept() -> None:
    service, account = await _service(5, failing=frozenset({2}))
    made = await service.generate_many(account, REQUEST, 3)
    assert sum(isinstance(m, ProviderError) for m in made) == 1
    assert await _balance(service, account) == 3
    assert (await reports.verify_ledger(service.store)).ok


async def test_when_every_image_fails_the_first_error_is_raised_and_all_refunded() -> None:
    service, account = await _service(5, failing=frozenset({1, 2}))
    with pytest.raises(ProviderError):
        await service.generate_many(account, REQUEST, 2)
    assert await _balance(service, account) == 5


async def test_a_balance_that_cannot_pay_them_all_is_refused_before_any_charge() -> None:
    service, account = await _service(2)
    with pytest.raises(InsufficientCredits):
        await service.generate_many(account, REQUEST, 3)
    with pytest.raises(InvalidInput):
        await service.generate_many(account, REQUEST, 5)
    assert await _balance(service, account) == 2

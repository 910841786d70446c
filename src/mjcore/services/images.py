"""Image generation through a text-to-image provider, charged on the one ledger."""

from __future__ import annotations

import asyncio
import math

from attrs import define, field, frozen

from ..clock import Clock
from ..errors import (
    ContentFiltered,
    InsufficientCredits,
    InvalidTransition,
    ProviderError,
    ProviderNotConfigured,
    ProviderTimeout,
)
from ..limits import Text, Whole
from ..ports import ImageGenerator, ImageRequest, ImageStore, Store
from ..pricing import Prices
from ..tasks import FailureKind, Provider, Task, TaskStatus
from . import reports, tasks
from .jobs import NO_OPTIONS, Extras, JobOptions
from .reports import Record

ASPECT_RATIOS = ("1:1", "4:3", "3:4", "16:9", "9:16", "21:9", "9:21")
FORMATS = ("png", "jpeg")
PROMPT = Text("prompt", 2000, nonblank=True)
ASPECT_RATIO = Text("aspect_ratio", 5, choices=ASPECT_RATIOS)
OUTPUT_FORMAT = Text("output_format", 4, choices=FORMATS)
SEED = Whole("seed", 0, 2**32 - 1)
COUNT = Whole("n", 1, 4)  # images made at once for one request
ACTION = "generate"
Unmade = ProviderError | InsufficientCredits
"""Why one image of several was not made (refunded, or never charged: the balance was
spent meanwhile)."""


@frozen
class Generated:
    task: Task
    credits_remaining: int
    data: bytes = b""  # the image itself, as stored


def aspect_ratio_of(width: int, height: int) -> str:
    """The offered aspect ratio nearest to ``width`` by ``height`` (1792x1024 is 16:9)."""

    def distance(ratio: str) -> float:
        w, h = (int(side) for side in ratio.split(":"))
        return abs(math.log((width / height) / (w / h)))

    return min(ASPECT_RATIOS, key=distance)


def check_request(request: ImageRequest) -> ImageRequest:
    PROMPT.check(request.prompt)
    ASPECT_RATIO.check(request.aspect_ratio)
    OUTPUT_FORMAT.check(request.output_format)
    if request.seed is not None:
        SEED.check(request.seed)
    return request


def _kind(error: ProviderError) -> FailureKind:
    if isinstance(error, ContentFiltered):
        return FailureKind.FILTERED
    return FailureKind.TIMEOUT if isinstance(error, ProviderTimeout) else FailureKind.ERROR


async def _credits(store: Store, account_id: int) -> int:
    async with store.unit_of_work(readonly=True) as uow:
        account = await uow.accounts.get(account_id)
    return 0 if account is None else account.credits


@define
class ImageService:
    """The image surface: generate with the text-to-image provider, list what was made."""

    store: Store
    clock: Clock
    prices: Prices
    generator: ImageGenerator
    images: ImageStore
    available: bool = True  # False: no provider credentials; refused before any charge
    extras: Extras = field(factory=Extras)  # callbacks and Idempotency-Keys

    async def generate(
        self, account_id: int, request: ImageRequest, options: JobOptions = NO_OPTIONS
    ) -> Generated:
        """Debit, generate, keep the image; any failure after the debit is refunded once."""
        if not self.available:
            raise ProviderNotConfigured("image generation is not available on this server")
        check_request(request)
        params = {
            "aspect_ratio": request.aspect_ratio,
            "output_format": request.output_format,
            "seed": request.seed,
        }
        draft = tasks.draft_task(
            self.clock,
            self.prices,
            account_id=account_id,
            provider=Provider.FIREWORKS,
            action=ACTION,
            prompt=request.prompt,
            params=await self.extras.params(params, options),
        )
        guard = self.extras.guard(options, draft.task_id)
        # no queue: it runs now, so the stale sweep can settle it after a crash
        task = await tasks.reserve_task(self.store, draft, started=True, guard=guard)
        try:
            image = await self.generator.generate(request)
            url = await self.images.save(image.data, image.content_type)
        except ProviderError as exc:
            await tasks.fail_task(self.store, self.clock, task.task_id, str(exc), _kind(exc))
            raise
        except BaseException as exc:  # our own failure (disk, cancellation): refunded all the same
            reason = f"internal error: {type(exc).__name__}"
            await tasks.fail_task(self.store, self.clock, task.task_id, reason)
            raise
        try:
            done = await tasks.advance_task(
                self.store,
                self.clock,
                task.task_id,
                TaskStatus.SUCCESS,
                image_url=url,
                provider_ref=image.request_id,
                result={"seed": image.seed, "content_type": image.content_type},
            )
        except InvalidTransition:  # the stale sweep settled (and refunded) it meanwhile
            raise ProviderTimeout("the image came too late; the job was refunded") from None
        return Generated(done, await _credits(self.store, account_id), image.data)

    async def generate_many(
        self, account_id: int, request: ImageRequest, count: int
    ) -> list[Generated | Unmade]:
        """``count`` images of one request, made at once, each charged and refunded on its
        own (:meth:`generate`): what each came to, in order. :class:`InsufficientCredits`
        before anything is charged when the balance cannot pay them all; the first error
        when none was made."""
        COUNT.check(count)
        check_request(request)
        balance, cost = await _credits(self.store, account_id), count * self.prices.of(ACTION)
        if balance < cost:
            raise InsufficientCredits(balance, cost)
        made = await asyncio.gather(
            *(self.generate(account_id, request) for _ in range(count)), return_exceptions=True
        )
        outcomes: list[Generated | Unmade] = []
        for outcome in made:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Unmade):
                raise outcome  # our own failure; each image's debit was settled all the same
            outcomes.append(outcome)
        if not any(isinstance(o, Generated) for o in outcomes):
            raise next(o for o in outcomes if isinstance(o, Unmade))
        return outcomes

    async def records(self, account_id: int, limit: int) -> list[Record]:
        return await reports.records(self.store, account_id, limit)

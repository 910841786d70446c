"""Stand-in providers for try-it mode (``mjcore serve --demo``): nothing leaves the machine.

:class:`DemoImages` answers like Fireworks with a generated placeholder PNG.
:class:`DemoMidjourney` plays Midjourney: an accepted job gets a start, a few progress
steps and a result (a 2×2 grid, or one image for an upscale), delivered to the same
listener handler the Discord gateway feeds. Both implement the existing provider ports.
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import struct
import uuid
import zlib
from collections.abc import Awaitable, Callable

from attrs import define, field

from mjcore.discord_accounts import DiscordAccount, Secret
from mjcore.midjourney import Attachment, EventType, ListenerEvent, MjAction
from mjcore.ports import GeneratedImage, ImageRequest, ImageStore, Upload
from mjcore.tasks import Task

Handler = Callable[[ListenerEvent], Awaitable[object]]
SIZES = {"1:1": (256, 256), "4:3": (256, 192), "3:4": (192, 256), "16:9": (320, 180),
         "9:16": (180, 320), "21:9": (336, 144), "9:21": (144, 336)}  # fmt: skip
DEMO_ACCOUNT = DiscordAccount(
    "demo", "100000000000000001", "100000000000000002", Secret("demo-user-token-not-real")
)
WORDING = {  # Midjourney's words for each kind of job (what the listener routes on)
    MjAction.UPSCALE: "Image #{index} ",
    MjAction.VARIATION: "Variations by ",
    MjAction.SOLO_VARIATION: "Variations by ",
    MjAction.SOLO_LOW_VARIATION: "Variations (Subtle) by ",
    MjAction.SOLO_HIGH_VARIATION: "Variations (Strong) by ",
    MjAction.ZOOMOUT: "Zoom Out by ",
    MjAction.EXPAND: "Pan {direction} by ",
}


def placeholder_png(text: str, width: int = 256, height: int = 256, tiles: int = 1) -> bytes:
    """A PNG of soft gradients coloured by ``text`` (``tiles``×``tiles`` panels), made
    with zlib and struct only."""
    digest = hashlib.sha256(text.encode()).digest()
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            panel = (y * tiles // height) * tiles + (x * tiles // width)
            hue = (digest[panel % 32] / 255 + 0.15 * panel) % 1.0
            light = 0.35 + 0.4 * ((x % (width // tiles)) / (width // tiles))
            r, g, b = colorsys.hls_to_rgb(hue, light, 0.55 + 0.3 * (y / height))
            rows += bytes((int(r * 255), int(g * 255), int(b * 255)))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )


@define
class DemoImages:
    """Fireworks' stand-in: a placeholder image as the request asked (PNG either way)."""

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        width, height = SIZES.get(request.aspect_ratio, (256, 256))
        seed = request.seed if request.seed is not None else 4242
        data = await asyncio.to_thread(placeholder_png, f"{request.prompt}#{seed}", width, height)
        return GeneratedImage(data, "image/png", f"demo-{uuid.uuid4().hex[:16]}", seed)


@define
class DemoMirror:
    """Results are already in our image store: trusted as they are, never copied."""

    public_url: str

    def trusted(self, url: str) -> bool:
        return url.startswith(f"{self.public_url}/images/")

    async def mirror(self, url: str) -> str | None:
        return None


@define
class DemoMidjourney:
    """Midjourney's stand-in: each job plays out in a couple of seconds."""

    images: ImageStore
    step_s: float = 0.4
    handler: Handler | None = None
    running: set[asyncio.Task[None]] = field(factory=set)

    def deliver_to(self, handler: Handler) -> None:
        """Where the job's events go (the Midjourney service's listener entry)."""
        self.handler = handler

    async def submit(self, task: Task, account: DiscordAccount) -> None:
        job = asyncio.create_task(self._play(task))
        self.running.add(job)
        job.add_done_callback(self.running.discard)

    async def _play(self, task: Task) -> None:
        assert self.handler is not None
        action = MjAction(task.action)
        wording = WORDING.get(action, "").format(
            index=task.params.get("index", 1),
            direction=str(task.params.get("direction", "left")).capitalize(),
        )
        message_id = str(int.from_bytes(uuid.uuid4().bytes[:7], "big"))

        def event(kind: EventType, tail: str, *found: Attachment) -> ListenerEvent:
            content = f"**{task.prompt}** - {wording}<@1> {tail}".rstrip()
            return ListenerEvent(kind, message_id, content, task.trigger_id, found)

        if action is MjAction.DESCRIBE:
            await self.handler(event(EventType.ERROR, "(describe is not simulated in demo mode)"))
            return
        await asyncio.sleep(self.step_s)
        await self.handler(event(EventType.START, "(Waiting to start)"))
        if action is not MjAction.UPSCALE:
            for percent in (25, 50, 75):
                await asyncio.sleep(self.step_s)
                await self.handler(event(EventType.GENERATING, f"({percent}%) (fast)"))
        await asyncio.sleep(self.step_s)
        tiles = 1 if action is MjAction.UPSCALE else 2
        text = f"{task.prompt}#{task.task_id}"
        data = await asyncio.to_thread(placeholder_png, text, 256, 256, tiles)
        url = await self.images.save(data, "image/png")
        name = f"demo_{uuid.uuid4()}.png"
        await self.handler(event(EventType.END, "(fast)", Attachment(url, name)))

    async def upload(
        self, account: DiscordAccount, filename: str, data: bytes, content_type: str
    ) -> Upload:
        url = await self.images.save(data, content_type)
        return Upload(filename, url)

    async def send_message(self, account: DiscordAccount, upload_filename: str) -> str:
        data = await asyncio.to_thread(placeholder_png, upload_filename)
        return await self.images.save(data, "image/png")

    async def check(self, account: DiscordAccount) -> bool:
        return True

    async def aclose(self) -> None:
        for job in list(self.running):
            job.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)

"""Image storage in a local directory, and copying provider images into it."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import tempfile
from pathlib import Path

import httpx
from attrs import define

from mjcore.ports import ImageStore, StoredImage

EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}
CONTENT_TYPES = {ext: kind for kind, ext in EXTENSIONS.items()}
_NAME = re.compile(r"[A-Za-z0-9_-]{32}\.(?:png|jpg|webp|gif)")
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff(data: bytes) -> str | None:
    """The image type the bytes really are (PNG, JPEG, WebP or GIF), else None."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@define
class LocalImageStore:
    """Images as files named by 192 random bits; the name is the only way to find one.

    The app serves them at ``{public_url}/images/{name}``.
    """

    directory: Path
    public_url: str

    async def save(self, data: bytes, content_type: str) -> str:
        name = secrets.token_urlsafe(24) + EXTENSIONS[content_type]
        await asyncio.to_thread(self._write, name, data)
        return f"{self.public_url}/images/{name}"

    def _write(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # write then rename: a reader never sees half a file
        fd, temp = tempfile.mkstemp(dir=self.directory, suffix=".part")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, self.directory / name)

    async def load(self, name: str) -> StoredImage | None:
        if not _NAME.fullmatch(name):
            return None
        path = self.directory / name
        if not await asyncio.to_thread(path.is_file):
            return None
        return StoredImage(path, CONTENT_TYPES[path.suffix])


@define
class HttpImageMirror:
    """Downloads a provider's image and keeps a copy; gives our absolute URL for it."""

    client: httpx.AsyncClient
    images: ImageStore
    max_bytes: int = 50 * 1024 * 1024

    async def mirror(self, url: str) -> str | None:
        try:
            async with self.client.stream("GET", url) as response:
                if not response.is_success:
                    return None
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        return None
                    chunks.append(chunk)
        except httpx.HTTPError:
            return None
        data = b"".join(chunks)
        kind = sniff(data)
        if kind is None:
            return None
        return await self.images.save(data, kind)

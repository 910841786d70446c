"""Image storage in a local directory, and copying provider images into it."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import tempfile
from pathlib import Path

import httpx
from attrs import define, field, frozen

from mjcore.media import CONTENT_TYPES, EXTENSIONS, sniff
from mjcore.ports import ImageStore, StoredImage

from .network import is_public, peer_of, resolves_public

log = logging.getLogger("mjcore.images")
DISCORD_CDN = ("cdn.discordapp.com", "media.discordapp.net")
_NAME = re.compile(r"[A-Za-z0-9_-]{32}\.(?:png|jpg|webp|gif)")


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
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # write then rename: a reader never sees half a file (mkstemp makes it 0600)
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


@frozen
class MirrorPolicy:
    """Which provider images may be copied (and shown at all), and how much it may cost.

    ``hosts`` are host names, reached over https only (Discord's CDN by default), or whole
    origins such as ``http://127.0.0.1:8080``: an origin named in full is trusted as it
    is, private address and all. A host name must resolve to public addresses only (a
    name pointing into our own network is refused, before and after connecting).
    """

    hosts: tuple[str, ...] = DISCORD_CDN
    max_bytes: int = 50 * 1024 * 1024
    deadline_s: float = 30.0

    def _entry(self, url: str) -> str | None:
        """The allow-list entry ``url`` falls under, if any."""
        try:
            parts = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            return None
        origin = f"{parts.scheme}://{parts.host}" + (f":{parts.port}" if parts.port else "")
        if origin in self.hosts:
            return origin
        if parts.scheme == "https" and parts.host in self.hosts:
            return parts.host
        return None

    def trusted(self, url: str) -> bool:
        return self._entry(url) is not None

    def named_in_full(self, url: str) -> bool:
        entry = self._entry(url)
        return entry is not None and "://" in entry


@define
class HttpImageMirror:
    """Copies a provider's image into our store, within :class:`MirrorPolicy`.

    Its own client (never the one that talks to Discord: a slow image must not starve
    job submissions), no redirects, one deadline for the whole copy, and the byte cap
    counted as the bytes arrive.
    """

    client: httpx.AsyncClient
    images: ImageStore
    policy: MirrorPolicy = field(factory=MirrorPolicy)

    def trusted(self, url: str) -> bool:
        return self.policy.trusted(url)

    async def mirror(self, url: str) -> str | None:
        if not self.policy.trusted(url):
            return None
        try:
            async with asyncio.timeout(self.policy.deadline_s):
                data = await self._fetch(url)
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            log.warning("could not copy %s: %s", httpx.URL(url).host, type(exc).__name__)
            return None
        kind = None if data is None else sniff(data)
        if data is None or kind is None:
            return None
        return await self.images.save(data, kind)

    async def _fetch(self, url: str) -> bytes | None:
        checked = self.policy.named_in_full(url)
        if not checked:
            parts = httpx.URL(url)
            if not await resolves_public(parts.host, parts.port or 443):
                log.warning("refused to copy from %s: not a public address", parts.host)
                return None
        async with self.client.stream("GET", url) as response:
            peer = peer_of(response)
            if not checked and (peer is None or not is_public(peer)):  # DNS may have changed
                return None
            if not response.is_success:
                return None
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.policy.max_bytes:
                    return None
                chunks.append(chunk)
        return b"".join(chunks)

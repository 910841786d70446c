"""Fireworks image generation: the synchronous FLUX route and the asynchronous Kontext mode."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
from attrs import define, frozen

from mjcore.errors import ContentFiltered, ProviderRejected, ProviderTimeout, ProviderUnavailable
from mjcore.media import sniff
from mjcore.ports import GeneratedImage, ImageRequest

from .upstream import call

ACCEPT = {"png": "image/png", "jpeg": "image/jpeg"}
MODERATED = ("Request Moderated", "Content Moderated")
NOT_FOUND = "Task not found"
FAILED = ("Error", "Failed", NOT_FOUND)
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "fireworks-request-id")


@frozen
class FireworksConfig:
    api_key: str | None
    base_url: str
    model: str
    timeout_s: float
    poll_interval_s: float = 0.5
    # a job just submitted may not be visible to get_result yet: "Task not found" within
    # this many seconds of the submission means "ask again", not "failed"
    not_found_grace_s: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.api_key)

    @property
    def asynchronous(self) -> bool:
        """Kontext models submit a job and are polled; the FLUX.1 ones answer with the image."""
        return self.model.startswith("flux-kontext")

    @property
    def model_url(self) -> str:
        return f"{self.base_url}/workflows/accounts/fireworks/models/{self.model}"


def _message(response: httpx.Response) -> str:
    """The error text, whatever shape Fireworks used this time."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:200]
        for key in ("error", "detail", "error_message", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])[:200]
    return response.text[:200]


@define
class FireworksImages:
    """:class:`mjcore.ports.ImageGenerator` over an injected ``httpx.AsyncClient``."""

    client: httpx.AsyncClient
    config: FireworksConfig

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        if not self.config.configured:
            raise ProviderUnavailable("Fireworks is not configured")
        try:
            async with asyncio.timeout(self.config.timeout_s):
                if self.config.asynchronous:
                    return await self._kontext(request)
                return await self._text_to_image(request)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise ProviderTimeout(
                f"Fireworks did not answer within {self.config.timeout_s:g} s"
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                f"Fireworks could not be reached: {type(exc).__name__}"
            ) from exc

    async def _call(self, operation: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await call(
            self.client,
            "fireworks",
            operation,
            method,
            url,
            secret=self.config.api_key,
            said=_message,
            **kwargs,
        )

    def _headers(self, accept: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.config.api_key}",
            "Content-Type": "application/json",
            "Accept": accept,
        }

    def _body(self, request: ImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": request.prompt, "aspect_ratio": request.aspect_ratio}
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    async def _text_to_image(self, request: ImageRequest) -> GeneratedImage:
        response = await self._call(
            "text_to_image",
            "POST",
            f"{self.config.model_url}/text_to_image",
            json=self._body(request),
            headers=self._headers(ACCEPT[request.output_format]),
        )
        _raise_for_status(response)
        if response.headers.get("finish-reason", "SUCCESS").upper() == "CONTENT_FILTERED":
            raise ContentFiltered("Fireworks filtered the image (CONTENT_FILTERED)")
        return self._image(response.content, response.headers, request)

    async def _kontext(self, request: ImageRequest) -> GeneratedImage:
        body = self._body(request) | {"output_format": request.output_format}
        submitted = await self._call(
            "submit",
            "POST",
            self.config.model_url,
            json=body,
            headers=self._headers("application/json"),
        )
        _raise_for_status(submitted)
        request_id = _field(submitted, "request_id")
        grace_until = time.monotonic() + self.config.not_found_grace_s
        while True:
            polled = await self._call(
                "get_result",
                "POST",
                f"{self.config.model_url}/get_result",
                json={"id": request_id},
                headers=self._headers("application/json"),
            )
            early = time.monotonic() < grace_until
            if polled.status_code == 404 and early:
                status = NOT_FOUND
            else:
                _raise_for_status(polled)
                status = _field(polled, "status")
            if status == "Ready":
                break
            if status in MODERATED:
                raise ContentFiltered(f"Fireworks filtered the request ({status})")
            if status in FAILED and not (status == NOT_FOUND and early):
                raise ProviderRejected(f"Fireworks could not make the image ({status})")
            await asyncio.sleep(self.config.poll_interval_s)
        result = polled.json().get("result") or {}
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str) or not sample.startswith(("http://", "https://")):
            raise ProviderRejected("Fireworks said Ready but gave no image URL")
        image = await self._call("download", "GET", sample)  # a signed URL: no Authorization
        _raise_for_status(image)
        return self._image(image.content, image.headers, request, request_id)

    def _image(
        self,
        data: bytes,
        headers: httpx.Headers,
        request: ImageRequest,
        request_id: str | None = None,
    ) -> GeneratedImage:
        kind = sniff(data)
        if kind is None:
            raise ProviderRejected("Fireworks answered without a valid image")
        seed_header = headers.get("seed", "")
        seed = int(seed_header) if seed_header.isdigit() else request.seed
        found = next((headers[h] for h in REQUEST_ID_HEADERS if h in headers), None)
        return GeneratedImage(
            data, kind, request_id or found or f"req_{secrets.token_hex(8)}", seed
        )


def _raise_for_status(response: httpx.Response) -> None:
    """Refuse a non-2xx answer: our words for clients (Fireworks' words, redacted, are in
    the ``provider.call`` event)."""
    if not response.is_success:
        raise ProviderRejected(f"Fireworks answered HTTP {response.status_code}")


def _field(response: httpx.Response, name: str) -> str:
    try:
        value = response.json()[name]
    except (ValueError, KeyError, TypeError):
        raise ProviderRejected(f"Fireworks' answer has no {name}") from None
    if not isinstance(value, str):
        raise ProviderRejected(f"Fireworks' answer has no {name}")
    return value

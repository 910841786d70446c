"""Requests to a provider, each told as one ``provider.call`` event (status and time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from mjcore import events

from .redact import redact


async def call(
    client: httpx.AsyncClient,
    provider: str,
    operation: str,
    method: str,
    url: str,
    *,
    secret: str | None,
    said: Callable[[httpx.Response], str] = lambda response: response.text,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request and log how it went: ``ok``, ``http_error`` (with what the provider
    ``said``, ``secret`` and bearer tokens cut out), ``timeout``, ``network`` or ``cancelled``
    (our own deadline or a shutdown stopped it). Errors are raised as httpx raises them."""
    started = time.perf_counter()
    outcome, status, detail = "cancelled", None, None
    try:
        response = await client.request(method, url, **kwargs)
        status = response.status_code
        if response.is_success:
            outcome = "ok"
        else:
            outcome, detail = "http_error", redact(said(response), secret)
        return response
    except httpx.TimeoutException:
        outcome = "timeout"
        raise
    except httpx.TransportError:
        outcome = "network"
        raise
    finally:
        events.provider_call(
            provider,
            operation,
            duration_s=time.perf_counter() - started,
            outcome=outcome,
            status=status,
            detail=detail,
        )

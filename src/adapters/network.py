"""Where we may connect on a client's (or a provider's) word: public addresses only."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx


def is_public(address: str) -> bool:
    """Not private, loopback, link-local, reserved, multicast or unspecified."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


async def resolves_public(host: str, port: int) -> bool:
    """Does every address ``host`` resolves to pass :func:`is_public`? (False if none.)"""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # no such name; a label IDNA cannot encode (over 63)
        return False
    return bool(found) and all(is_public(str(info[4][0])) for info in found)


def peer_of(response: httpx.Response) -> str | None:
    """The address the response came from (None: the transport does not say)."""
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("server_addr") if stream is not None else None
    return str(address[0]) if address else None

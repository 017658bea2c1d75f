"""Refuse outbound requests to addresses inside the platform's own network (SSRF).

A URL is allowed when its scheme is http or https and every address its host resolves to is
globally routable: no loopback, private, link-local, shared (CGNAT), multicast, reserved or
unspecified address, in IPv4 or IPv6, including IPv4 addresses mapped into IPv6.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class BlockedAddress(ValueError):
    """The destination is not a public internet address."""


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def check_public_url(url: str, *, allow_private: bool = False) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedAddress(f"only http and https URLs with a host are allowed, not {parts.scheme!r}")
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(parts.hostname, port)
    blocked = [str(a) for a in addresses if not is_public(a)]
    if blocked or not addresses:
        raise BlockedAddress(f"{parts.hostname} resolves to an address that is not public ({', '.join(blocked)})")

"""Refuse outbound requests to addresses inside the platform's own network (SSRF).

A URL is allowed when its scheme is http or https and every address its host resolves to is
globally routable: no loopback, private, link-local, shared (CGNAT), multicast, reserved or
unspecified address, in IPv4 or IPv6, including IPv4 addresses carried inside IPv6 (mapped,
6to4, NAT64), which are judged by the IPv4 address they lead to.

A check is only as good as the connection that follows it: connect to the addresses
:func:`check_public_url` returns, never to the name again, or a second DNS answer that nobody
checked (DNS rebinding) decides where the request goes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import urlsplit

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(ValueError):
    """The destination is not a public internet address."""


@dataclass(frozen=True, slots=True)
class CheckedURL:
    """A URL whose host was looked up once, with every address of the answer checked."""

    url: str
    scheme: str
    host: str  # the name as the URL gives it (lower case): for Host and TLS, not for connecting
    port: int
    addresses: tuple[IPAddress, ...]  # what to connect to, in the resolver's order of preference


# Listed even where ``is_global`` already says no: its tables differ between Python releases
# (3.11 calls 192.0.0.9, fec0::/10 and ::ffff:0:0:0/96 global), and this list must not.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (CGNAT); cloud metadata such as 100.100.100.200
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local; cloud metadata at 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments, including the anycast ones is_global allows
        "192.0.2.0/24",
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking, often used for lab networks
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, with the broadcast address
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
        "::ffff:0:0:0/96",  # IPv4-translated (RFC 2765), a way to name any IPv4 address
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): translates into the operator's own network
        "100::/64",  # discard
        "2001::/32",  # Teredo: the embedded IPv4 addresses are obfuscated, so no check is possible
        "2001:db8::/32",
        "fc00::/7",  # unique local, e.g. AWS metadata at fd00:ec2::254
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local, still routed by some stacks
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # An address that carries an IPv4 address ends up at that IPv4 address: judge that one.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
        blocked: tuple[ipaddress.IPv4Network, ...] | tuple[ipaddress.IPv6Network, ...] = _BLOCKED_V6
    else:
        blocked = _BLOCKED_V4
    return address.is_global and not address.is_multicast and not any(address in net for net in blocked)


async def resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def check_public_url(url: str, *, allow_private: bool = False) -> CheckedURL:
    """Resolve ``url``'s host once and check every address; :class:`BlockedAddress` if one is not public.

    ``allow_private`` (for development) accepts any address, but the answer is still the one to
    connect to, so a request goes the same way in development as in production.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedAddress(f"only http and https URLs with a host are allowed, not {parts.scheme!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(parts.hostname, port)
    blocked = [] if allow_private else [str(a) for a in addresses if not is_public(a)]
    if blocked or not addresses:
        raise BlockedAddress(f"{parts.hostname} resolves to an address that is not public ({', '.join(blocked)})")
    return CheckedURL(url, parts.scheme, parts.hostname, port, tuple(addresses))

"""Where a call to a cat may go: the proxy's guard against server-side request forgery.

A cat version's ``base_url`` is written by the cat's developer, so it may name anything the
proxy can reach. `Guard.destination` turns it into the one address the proxy connects to, after
checking that every address the host stands for is public (or allowed by ``proxy.allow_hosts``).
The gateway connects to that address and never looks the name up again, so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot steer a call inside.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from cathouse.platform.netguard import is_public

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver: TypeAlias = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_PORTS = {"http": 80, "https": 443}
# A refusal that depends on DNS may stop being one: remember it only long enough to absorb a burst.
NEGATIVE_TTL = 5.0
# base_urls come from the catalog, a bounded set; the bound only stops a runaway.
MAX_ENTRIES = 10_000
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")

# What other URL parsers read differently from urlsplit (whitespace, backslash, controls).
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG's rule: a host whose last label is a number is an IPv4 address, never a name.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)")


class Blocked(Exception):
    """The destination is not allowed; the message is safe to show the caller (names the host, never internals)."""


@dataclass(frozen=True, slots=True)
class Destination:
    scheme: str  # "http" | "https"
    # For Host and SNI: lower-cased, IDNA-encoded, no trailing dot; an IP literal in its canonical
    # form, IPv6 in brackets ("[2001:db8::1]").
    host: str
    port: int
    address: str  # the checked IP literal to connect to
    base_path: str  # the URL's path without a trailing slash ("" for "/")


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    base_path: str
    literal: IPAddress | None


async def getaddrinfo(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class Guard:
    def __init__(
        self,
        *,
        allow: Sequence[str] = (),
        dns_ttl: float = 30.0,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        resolve_timeout: float = 5.0,
    ) -> None:
        self._allowed_hosts: set[str] = set()
        self._allowed_networks: list[IPNetwork] = []
        for entry in allow:
            host_or_network = _allow_entry(entry)
            if isinstance(host_or_network, str):
                self._allowed_hosts.add(host_or_network)
            else:
                self._allowed_networks.append(host_or_network)
        self._dns_ttl = dns_ttl
        self._negative_ttl = min(NEGATIVE_TTL, dns_ttl)
        self._resolver = resolver or getaddrinfo
        self._clock = clock
        self._resolve_timeout = resolve_timeout
        # base_url -> (expires, destination or refusal): after the first call, the whole cost.
        self._urls: dict[str, tuple[float, Destination | str]] = {}
        # (host, port) -> (expires, checked address or refusal); shared by base_urls on one host.
        self._names: dict[tuple[str, int], tuple[float, IPAddress | str]] = {}
        # Concurrent first calls for a name wait for one lookup instead of starting one each.
        self._lookups: dict[tuple[str, int], asyncio.Task[tuple[float, IPAddress | str]]] = {}

    async def destination(self, base_url: str) -> Destination:
        cached = self._urls.get(base_url)
        if cached is None or cached[0] <= self._clock():
            cached = await self._evaluate(base_url)
            _make_room(self._urls)
            self._urls[base_url] = cached
        if isinstance(cached[1], str):
            raise Blocked(cached[1])
        return cached[1]

    async def _evaluate(self, base_url: str) -> tuple[float, Destination | str]:
        try:
            target = _parse(base_url)
        except Blocked as exc:
            return math.inf, str(exc)  # the same text never parses differently
        if target.literal is not None:
            # Neither the address nor the allow list changes while the process runs.
            expires, outcome = math.inf, self._checked(target.host, [target.literal], literal=True)
        else:
            expires, outcome = await self._address(target.host, target.port)
        if isinstance(outcome, str):
            return expires, outcome
        return expires, Destination(target.scheme, target.host, target.port, str(outcome), target.base_path)

    async def _address(self, host: str, port: int) -> tuple[float, IPAddress | str]:
        key = (host, port)
        cached = self._names.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached
        task = self._lookups.get(key)
        if task is None:
            task = asyncio.create_task(self._lookup(host, port))
            self._lookups[key] = task
            task.add_done_callback(functools.partial(self._finish, key))
        # A caller that gives up (its request was cancelled) must not cancel the others' lookup.
        return await asyncio.shield(task)

    def _finish(self, key: tuple[str, int], task: asyncio.Task[tuple[float, IPAddress | str]]) -> None:
        self._lookups.pop(key, None)
        # exception() also marks a failure as seen when every waiter has gone.
        if not task.cancelled() and task.exception() is None:
            _make_room(self._names)
            self._names[key] = task.result()

    async def _lookup(self, host: str, port: int) -> tuple[float, IPAddress | str]:
        if _is_localhost(host) and host not in self._allowed_hosts:
            # RFC 6761: these names are loopback whatever a resolver says, so none is asked.
            addresses: list[IPAddress] = [LOOPBACK]
        else:
            addresses = await self._resolve(host, port)
        if not addresses:
            return self._clock() + self._negative_ttl, f"{host} cannot be resolved"
        outcome = self._checked(host, addresses, literal=False)
        return self._clock() + (self._negative_ttl if isinstance(outcome, str) else self._dns_ttl), outcome

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            async with asyncio.timeout(self._resolve_timeout):
                answers = await self._resolver(host, port)
            return list(dict.fromkeys(ipaddress.ip_address(answer) for answer in answers))
        except (OSError, UnicodeError, ValueError, TimeoutError):
            return []

    def _checked(self, host: str, addresses: list[IPAddress], *, literal: bool) -> IPAddress | str:
        """The address to connect to, or why there is none: one refused address refuses them all."""
        if host not in self._allowed_hosts:
            for address in addresses:
                if not (is_public(address) or any(address in network for network in self._allowed_networks)):
                    if literal:
                        return f"{host} is not a public address"
                    return f"{host} resolves to an address that is not public"
        return addresses[0]


def _make_room(cache: dict[Any, Any]) -> None:
    if len(cache) >= MAX_ENTRIES:
        del cache[next(iter(cache))]  # the oldest: dicts keep insertion order


def _allow_entry(entry: str) -> str | IPNetwork:
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    try:
        host = _normalise_host(text)
        literal = _parse_ipv4(host)
    except Blocked:
        literal, host = None, ""
    if literal is not None:
        return ipaddress.ip_network(literal)
    if not _is_name(host):
        raise ValueError(f"proxy.allow_hosts: {entry!r} is neither a host name nor a network")
    return host


def _parse(url: str) -> _Target:
    if _UNSAFE.search(url):
        raise Blocked("the cat's URL contains characters that are not allowed")
    match = _URL.fullmatch(url)
    if match is None:
        if "?" in url or "#" in url:
            raise Blocked("the cat's URL must not have a query or fragment")
        raise Blocked("the cat's URL must be an absolute http or https URL")
    scheme = match["scheme"].lower()
    if scheme not in DEFAULT_PORTS:
        raise Blocked("the cat's URL must use http or https")
    authority, path = match["authority"], match["path"]
    if "@" in authority:
        raise Blocked("the cat's URL must not contain credentials")
    if not path.isascii():
        raise Blocked("the cat's URL path must be percent-encoded")
    host, port_text = _split_authority(authority)
    port = DEFAULT_PORTS[scheme]
    if port_text:
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 and 1 <= int(port_text) <= 65535):
            raise Blocked("the cat's URL has an invalid port")
        port = int(port_text)
    literal: IPAddress | None
    if host.startswith("["):
        literal = _parse_ipv6(host)
        host = f"[{literal}]"
    else:
        host = _normalise_host(host)
        literal = _parse_ipv4(host)
        if literal is not None:
            host = str(literal)
        elif not _is_name(host):
            raise Blocked("the cat's URL has an invalid host")
    return _Target(scheme, host, port, path.rstrip("/"), literal)


def _split_authority(authority: str) -> tuple[str, str]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0 or authority[end + 1 : end + 2] not in ("", ":"):
            raise Blocked("the cat's URL has an invalid host")
        return authority[: end + 1], authority[end + 2 :]
    host, _, port = authority.partition(":")
    if not host or ":" in port:
        raise Blocked("the cat's URL has an invalid host")
    return host, port


def _parse_ipv6(bracketed: str) -> ipaddress.IPv6Address:
    text = bracketed[1:-1]
    if "%" in text:
        # A zone id names one of the proxy's own interfaces, never a cat.
        raise Blocked("the cat's URL must not name a network interface")
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise Blocked("the cat's URL has an invalid host") from None


def _normalise_host(host: str) -> str:
    """Lower-cased, IDNA-encoded, without the trailing dot that names the same host."""
    host = host.lower()
    if not host.isascii():
        try:
            # Also maps full-width letters, digits and dots to ASCII, so they hide no literal.
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise Blocked("the cat's URL has an invalid host") from None
    return host.removesuffix(".")


def _is_name(host: str) -> bool:
    return 0 < len(host) <= 253 and all(_LABEL.fullmatch(label) for label in host.split("."))


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a host written as IPv4 stands for, read as inet_aton does ("0x7f.1", "2130706433").

    None for a name. Blocked when the host looks like a number but is no valid address: a
    resolver might still read it as one.
    """
    labels = host.split(".")
    if not _NUMERIC_LABEL.fullmatch(labels[-1]):
        return None
    invalid = Blocked("the cat's URL has an invalid host")
    if len(labels) > 4 or any(len(label) > 34 or not _NUMERIC_LABEL.fullmatch(label) for label in labels):
        raise invalid
    numbers = []
    for label in labels:
        if label.startswith("0x"):
            numbers.append(int(label[2:] or "0", 16))
        elif label.startswith("0") and len(label) > 1:
            if not set(label) <= set("01234567"):
                raise invalid
            numbers.append(int(label, 8))
        else:
            numbers.append(int(label))
    *leading, last = numbers
    # As in inet_aton, the last number fills every byte the others leave: "127.1" is 127.0.0.1.
    if any(number > 255 for number in leading) or last >= 256 ** (4 - len(leading)):
        raise invalid
    value = last
    for index, number in enumerate(leading):
        value |= number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _is_localhost(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")

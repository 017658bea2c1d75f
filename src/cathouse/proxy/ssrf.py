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
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from cathouse.platform.baseurl import LOOPBACK, AllowList, UnsafeURL, is_localhost, parse_base_url

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver: TypeAlias = Callable[[str, int], Awaitable[list[str]]]

# A refusal that depends on DNS may stop being one: remember it only long enough to absorb a burst.
NEGATIVE_TTL = 5.0
# base_urls come from the catalog, a bounded set; the bound only stops a runaway.
MAX_ENTRIES = 10_000


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
        self._allow = AllowList(allow)
        self._allowed_hosts = self._allow.hosts
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
            target = parse_base_url(base_url)
        except UnsafeURL as exc:
            return math.inf, f"the cat's URL {exc}"  # the same text never parses differently
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
        if is_localhost(host) and host not in self._allowed_hosts:
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
                if not self._allow.admits(address):
                    if literal:
                        return f"{host} is not a public address"
                    return f"{host} resolves to an address that is not public"
        return addresses[0]


def _make_room(cache: dict[Any, Any]) -> None:
    if len(cache) >= MAX_ENTRIES:
        del cache[next(iter(cache))]  # the oldest: dicts keep insertion order

"""A cat's base URL read the one way the proxy connects to it, for the proxy and the catalog.

The proxy parses every ``base_url`` with :func:`parse_base_url` before its SSRF guard looks the
host up; the catalog calls :func:`check_base_url` when a version is created, so what the proxy
would refuse on every call (credentials, a query, a fragment, a backslash, an address that is
not public) is refused once, at the source, with the reason. Names are not looked up there: what
a name resolves to can change, and the proxy checks every answer when it calls.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from cathouse.platform.netguard import is_public

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")

# What other URL parsers read differently from urlsplit (whitespace, backslash, controls).
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG's rule: a host whose last label is a number is an IPv4 address, never a name.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)")


class UnsafeURL(ValueError):
    """The URL cannot be a cat's base URL; the message says why ("must not contain credentials")."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str  # "http" | "https"
    # Lower-cased, IDNA-encoded, no trailing dot; an IP literal in its canonical form, IPv6 in
    # brackets ("[2001:db8::1]").
    host: str
    port: int
    base_path: str  # the URL's path without a trailing slash ("" for "/")
    literal: IPAddress | None


class AllowList:
    """Hosts (exact names) and networks that may be reached although not public (``proxy.allow_hosts``)."""

    def __init__(self, entries: Sequence[str] = ()) -> None:
        self.hosts: set[str] = set()
        self.networks: list[IPNetwork] = []
        for entry in entries:
            host_or_network = allow_entry(entry)
            if isinstance(host_or_network, str):
                self.hosts.add(host_or_network)
            else:
                self.networks.append(host_or_network)

    def admits(self, address: IPAddress) -> bool:
        return is_public(address) or any(address in network for network in self.networks)


def check_base_url(url: str, allow: AllowList) -> Target:
    """The URL's parts, or :class:`UnsafeURL`: what the proxy would refuse whatever DNS says."""
    target = parse_base_url(url)
    if target.host in allow.hosts:
        return target
    if target.literal is not None and not allow.admits(target.literal):
        raise UnsafeURL(f"{target.host} is not a public address (loopback, private, link-local or reserved)")
    if is_localhost(target.host) and not allow.admits(LOOPBACK):  # RFC 6761: loopback, whatever DNS says
        raise UnsafeURL(f"{target.host} is not a public address (loopback)")
    return target


def allow_entry(entry: str) -> str | IPNetwork:
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    try:
        host = _normalise_host(text)
        literal = _parse_ipv4(host)
    except UnsafeURL:
        literal, host = None, ""
    if literal is not None:
        return ipaddress.ip_network(literal)
    if not _is_name(host):
        raise ValueError(f"proxy.allow_hosts: {entry!r} is neither a host name nor a network")
    return host


def parse_base_url(url: str) -> Target:
    if _UNSAFE.search(url):
        raise UnsafeURL("contains characters that are not allowed (whitespace, controls, backslashes)")
    match = _URL.fullmatch(url)
    if match is None:
        if "?" in url or "#" in url:
            raise UnsafeURL("must not have a query or fragment")
        raise UnsafeURL("must be an absolute http or https URL")
    scheme = match["scheme"].lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeURL("must use http or https")
    authority, path = match["authority"], match["path"]
    if "@" in authority:
        raise UnsafeURL("must not contain credentials (user:password@)")
    if not path.isascii():
        raise UnsafeURL("path must be percent-encoded")
    host, port_text = _split_authority(authority)
    port = DEFAULT_PORTS[scheme]
    if port_text:
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 and 1 <= int(port_text) <= 65535):
            raise UnsafeURL("has an invalid port")
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
            raise UnsafeURL("has an invalid host")
    return Target(scheme, host, port, path.rstrip("/"), literal)


def _split_authority(authority: str) -> tuple[str, str]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0 or authority[end + 1 : end + 2] not in ("", ":"):
            raise UnsafeURL("has an invalid host")
        return authority[: end + 1], authority[end + 2 :]
    host, _, port = authority.partition(":")
    if not host or ":" in port:
        raise UnsafeURL("has an invalid host")
    return host, port


def _parse_ipv6(bracketed: str) -> ipaddress.IPv6Address:
    text = bracketed[1:-1]
    if "%" in text:
        # A zone id names one of the proxy's own interfaces, never a cat.
        raise UnsafeURL("must not name a network interface")
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise UnsafeURL("has an invalid host") from None


def _normalise_host(host: str) -> str:
    """Lower-cased, IDNA-encoded, without the trailing dot that names the same host."""
    host = host.lower()
    if not host.isascii():
        try:
            # Also maps full-width letters, digits and dots to ASCII, so they hide no literal.
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UnsafeURL("has an invalid host") from None
    return host.removesuffix(".")


def _is_name(host: str) -> bool:
    return 0 < len(host) <= 253 and all(_LABEL.fullmatch(label) for label in host.split("."))


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a host written as IPv4 stands for, read as inet_aton does ("0x7f.1", "2130706433").

    None for a name. UnsafeURL when the host looks like a number but is no valid address: a
    resolver might still read it as one.
    """
    labels = host.split(".")
    if not _NUMERIC_LABEL.fullmatch(labels[-1]):
        return None
    invalid = UnsafeURL("has an invalid host")
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


def is_localhost(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")

"""A version's endpoint map, compiled: method and path → the permission the call needs.

Patterns are paths whose segments are literals or ``{name}`` placeholders matching one
segment. Literal routes are a dict lookup; the rest are tried in the order the map gives,
most literal segments first, so ``/users/me`` wins over ``/users/{id}`` whatever the order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_PLACEHOLDER = re.compile(r"\{[a-z_][a-z0-9_]*\}")
# One segment: anything but a slash. Percent-encoded slashes stay encoded, so they match too.
_SEGMENT = "[^/]+"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: str
    permission: str


class RouteMap:
    def __init__(self, endpoints: Iterable[Mapping[str, Any]]) -> None:
        self._exact: dict[tuple[str, str], Route] = {}
        templated: list[tuple[int, str, re.Pattern[str], Route]] = []
        for entry in endpoints:
            route = Route(str(entry["method"]).upper(), _normal(str(entry["path"])), str(entry["permission"]))
            if _PLACEHOLDER.search(route.pattern) is None:
                self._exact.setdefault((route.method, route.pattern), route)
                continue
            literal = sum(1 for s in route.pattern.split("/") if s and not _PLACEHOLDER.fullmatch(s))
            regex = "".join(
                _SEGMENT if _PLACEHOLDER.fullmatch(part) else re.escape(part)
                for part in re.split(r"(\{[a-z_][a-z0-9_]*\})", route.pattern)
                if part
            )
            templated.append((literal, route.method, re.compile(regex), route))
        templated.sort(key=lambda t: -t[0])  # stable: the map's order among equals
        self._templated = [(method, regex, route) for _, method, regex, route in templated]

    def match(self, method: str, path: str) -> Route | None:
        """The route for a call, or None when the map has none. HEAD is allowed where GET is."""
        path = _normal(path)
        found = self._lookup(method, path)
        if found is None and method == "HEAD":
            found = self._lookup("GET", path)
        return found

    def _lookup(self, method: str, path: str) -> Route | None:
        exact = self._exact.get((method, path))
        if exact is not None:
            return exact
        for candidate, regex, route in self._templated:
            if candidate == method and regex.fullmatch(path):
                return route
        return None


def _normal(path: str) -> str:
    # "/points/" and "/points" are one route; the root stays "/".
    return "/" + path.strip("/")

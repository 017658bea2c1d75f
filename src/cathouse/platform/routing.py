"""405 Method Not Allowed, decided by the path alone, with every method of the path in ``Allow``.

Starlette tries routes in order and answers the first that matches path and method; a route
whose path matched but whose method did not answers 405 with only its own method in ``Allow``,
and FastAPI makes one route per method. So ``OPTIONS /installations`` said ``Allow: POST`` where
the path also has GET, and ``PATCH /installations/deliveries`` reached
``PATCH /installations/{installation_id}`` and failed there as a malformed id (422).

Here a request's path picks its resource first: of the route templates that match it, the most
literal (fewest parameters) wins, as ``/installations/deliveries`` over
``/installations/{installation_id}``. A method that resource does not have is answered 405 with
all of its methods; anything else goes on to the router unchanged, and a path no route matches
stays 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass
class Resource:
    """One path template and every method its routes answer."""

    template: str
    regex: re.Pattern[str]
    literal: int  # segments without a parameter: the more, the more specific
    methods: set[str] = field(default_factory=set)


def resources(app: FastAPI) -> list[Resource]:
    found: dict[str, Resource] = {}
    for context in iter_route_contexts(app.routes):
        template, methods = context.path, context.methods
        regex = getattr(context, "path_regex", None)
        if template is None or not methods or regex is None:
            continue  # not an HTTP route with a path (a mount or a websocket)
        if template not in found:
            literal = sum(1 for part in template.split("/") if part and "{" not in part)
            found[template] = Resource(template, regex, literal)
        found[template].methods |= methods
    return list(found.values())


def allowed_methods(table: list[Resource], path: str) -> set[str] | None:
    """The methods of the most specific resource at ``path``, or None when no route matches it."""
    best, allowed = -1, set[str]()
    for resource in table:
        if resource.literal < best or not resource.regex.match(path):
            continue
        if resource.literal > best:
            best, allowed = resource.literal, set()
        allowed |= resource.methods
    return allowed if best >= 0 else None


def _route_path(scope: Scope) -> str:
    """The path routes match: without the ``root_path`` a proxy in front may have mounted us under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


class MethodGate:
    """In front of the router: a method the path's resource does not have is a 405 (rendered by
    the app's error handlers, as every other refusal)."""

    def __init__(self, app: ASGIApp, owner: FastAPI) -> None:
        self.app = app
        self.owner = owner
        self._table: list[Resource] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self._table is None:
                # Built on the first request, when every router has been included.
                self._table = resources(self.owner)
            allowed = allowed_methods(self._table, _route_path(scope))
            if allowed is not None and scope["method"] not in allowed:
                raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        await self.app(scope, receive, send)


def install_method_gate(app: FastAPI) -> None:
    app.router.middleware_stack = MethodGate(app.router.middleware_stack, app)

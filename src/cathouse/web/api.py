"""The services' public HTTP API, as the pages call it: JSON in, words out.

Every failure becomes an :class:`ApiProblem` carrying what the page tells the visitor: the
problem+json ``detail`` the service wrote for people (and, for a validation problem, a sentence
per field, so a form shows each next to its field), or a sentence of ours when the service
could not be reached or answered something that is not a problem document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

Params = Mapping[str, str | int | float | Sequence[str] | None]
# Sent with every call, for the API's rate limits and access log: the visitor's address. In the
# one-process platform the transport puts it where the API reads it (``app.VISITOR_HEADER``).
VISITOR_HEADER = "x-cathouse-visitor"


class ApiProblem(Exception):
    """An answer the page cannot show as content: its status, a sentence for a person, and one
    per field the API named (``{"email": "value is not a valid email address."}``)."""

    def __init__(
        self, status: int, title: str, detail: str, fields: Mapping[str, str] | None = None, code: str | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.fields = dict(fields or {})
        self.code = code


def _words(response: httpx.Response) -> ApiProblem:
    """What went wrong, in the service's own words when it sent a problem document."""
    title, detail = "Something went wrong", f"The service answered {response.status_code}."
    fields: dict[str, str] = {}
    code = None
    if response.headers.get("content-type", "").startswith(("application/problem+json", "application/json")):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            title = str(body.get("title") or title)
            detail = str(body.get("detail") or detail)
            code = str(body["code"]) if body.get("code") else None
            # Validation problems list each field: say which, as the API does.
            errors = body.get("errors")
            if isinstance(errors, list) and errors:
                named = [_field(e) for e in errors[:20] if isinstance(e, dict)]
                fields = {name: message for name, message in reversed(named) if name}
                detail = " ".join(_sentence(name, message) for name, message in named[:5]) or detail
    return ApiProblem(response.status_code, title, detail, fields, code)


def _field(error: Mapping[str, Any]) -> tuple[str, str]:
    """``("body.settings.level", "Input should be ...")`` as ``("settings.level", "Input should be ....")``."""
    loc = str(error.get("loc") or "")
    field = loc.split(".", 1)[1] if loc.startswith(("query.", "path.", "body.")) else loc
    if loc == "body":
        field = ""
    message = str(error.get("message") or "is not valid").rstrip(".") + "."
    return field, message


def _sentence(field: str, message: str) -> str:
    return f"{field}: {message}" if field else message


Refresher = Callable[[], Awaitable[str | None]]


class Api:
    """Requests to the API on ``client`` (its base URL or transport decides where they go), as the
    visitor at ``visitor`` and, with ``token``, as the signed-in person.

    ``refresh``, when given, is asked for a new access token when the API says the one sent has
    expired (401); the call is then made once more with it.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        token: str | None = None,
        visitor: str | None = None,
        refresh: Refresher | None = None,
    ) -> None:
        self.client = client
        self.token = token
        self.visitor = visitor
        self._refresh = refresh

    async def get(self, path: str, params: Params | None = None) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return await self.call("POST", path, json=json, **kwargs)

    async def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return await self.call("PUT", path, json=json, **kwargs)

    async def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return await self.call("PATCH", path, json=json, **kwargs)

    async def delete(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return await self.call("DELETE", path, json=json, **kwargs)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The JSON the API answered (None for 204), or :class:`ApiProblem`."""
        response = await self._send(method, path, params, json, content, headers, self.token)
        if response.status_code == 401 and self.token is not None and self._refresh is not None:
            fresh = await self._refresh()
            if fresh is not None:
                self.token = fresh
                response = await self._send(method, path, params, json, content, headers, fresh)
        if response.status_code >= 300:
            raise _words(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def _send(
        self,
        method: str,
        path: str,
        params: Params | None,
        json: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        token: str | None,
    ) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "", [])}
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if self.visitor:
            sent[VISITOR_HEADER] = self.visitor
            sent.setdefault("X-Forwarded-For", self.visitor)
        try:
            return await self.client.request(method, path, params=clean, json=json, content=content, headers=sent)
        except httpx.TimeoutException:
            raise ApiProblem(504, "The service is slow", "The service did not answer in time; try again.") from None
        except httpx.TransportError:
            raise ApiProblem(
                503, "The service cannot be reached", "The service cannot be reached right now; try again soon."
            ) from None

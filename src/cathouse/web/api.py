"""The services' public HTTP API, as the pages call it: JSON in, words out.

Every failure becomes an :class:`ApiProblem` carrying what the page tells the visitor: the
problem+json ``detail`` the service wrote for people, or a sentence of ours when the service
could not be reached or answered something that is not a problem document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

Params = Mapping[str, str | int | float | Sequence[str] | None]


class ApiProblem(Exception):
    """An answer the page cannot show as content: its status and a sentence for a person."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def _words(response: httpx.Response) -> ApiProblem:
    """What went wrong, in the service's own words when it sent a problem document."""
    title, detail = "Something went wrong", f"The service answered {response.status_code}."
    if response.headers.get("content-type", "").startswith(("application/problem+json", "application/json")):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            title = str(body.get("title") or title)
            detail = str(body.get("detail") or detail)
            # Validation problems list each field: say which, as the API does.
            errors = body.get("errors")
            if isinstance(errors, list) and errors:
                detail = " ".join(_field_message(e) for e in errors[:5] if isinstance(e, dict)) or detail
    return ApiProblem(response.status_code, title, detail)


def _field_message(error: Mapping[str, Any]) -> str:
    """``query.sort: Input should be ...`` as ``sort: Input should be ...``: the field as the form names it."""
    loc = str(error.get("loc") or "")
    field = loc.split(".", 1)[1] if loc.startswith(("query.", "path.", "body.")) else loc
    message = str(error.get("message") or "is not valid").rstrip(".")
    return f"{field}: {message}." if field else f"{message}."


class Api:
    """GET requests to the API on ``client`` (its base URL or transport decides where they go)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, path: str, params: Params | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "", [])}
        try:
            response = await self.client.get(path, params=clean)
        except httpx.TimeoutException:
            raise ApiProblem(504, "The catalog is slow", "The catalog did not answer in time; try again.") from None
        except httpx.TransportError:
            raise ApiProblem(
                503, "The catalog cannot be reached", "The catalog cannot be reached right now; try again soon."
            ) from None
        if response.status_code != 200:
            raise _words(response)
        return response.json()

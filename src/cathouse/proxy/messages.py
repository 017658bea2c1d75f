"""The messages of a proxy call: what the caller sent (its credential, request id, body), the
headers the cat gets, and the answers the proxy gives itself (problem+json with the decision).

Kept apart from the gateway's checks and flow so that each reads on its own; none of it waits
on anything but the caller's own body.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.types import Message, Receive, Scope, Send

from cathouse.proxy.context import InstallationContext
from cathouse.proxy.ratelimit import Decision
from cathouse.proxy.upstream import Response

PREFIX = "/api/v1/proxy/"
# A request body up to this size is read before forwarding, so an idempotent call can be retried.
BUFFERED_BODY = 64 * 1024
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Never forwarded to the cat: the caller's own credentials and what the proxy sets itself.
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"authorization", b"cookie", b"content-length", b"x-request-id", b"expect"}
# Never returned to the caller: the cat's cookies would be set on the platform's domain; the
# platform's server sends its own Date, and names no server (as nginx drops a proxied Date and Server).
NOT_RETURNED = HOP_BY_HOP | {b"set-cookie", b"set-cookie2", b"date", b"server"}
REQUEST_ID_OK = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


class Refused(Exception):
    """A call the proxy answers itself; carries the problem and the audit decision."""

    def __init__(self, status: int, decision: str, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status = status
        self.decision = decision
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class TooLarge(Exception):
    pass


@dataclass(slots=True)
class Call:
    """What one request learned on its way, for its answer, its audit record and its metrics."""

    request_id: str
    method: str
    path: str
    query: str
    started: float
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    context: InstallationContext | None = None
    decision: str = "allowed"
    status: int = 500
    upstream_status: int | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    limit: Decision | None = None
    responded: bool = False


def escapes(path: str) -> bool:
    if "." not in path and "%" not in path:
        return False  # the usual path, decided without splitting it (%2e is a dot too)
    return any(unquote(segment) in (".", "..") for segment in path.split("/"))


def request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and 0 < len(value) <= 128 and all(c in REQUEST_ID_OK for c in value):
            return str(value.decode("ascii"))
    return os.urandom(16).hex()  # as random as uuid4().hex, at a fifth of the cost


def bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def forwarded_headers(
    scope: Scope, host: str, request_id: str, context: InstallationContext
) -> list[tuple[bytes, bytes]]:
    dropped = NOT_FORWARDED
    for name, value in scope["headers"]:
        if name == b"connection":
            # Headers the caller named as hop-by-hop go no further either.
            dropped = dropped | {t.strip().lower().encode() for t in value.decode("latin-1").split(",")}
    if context.inject_headers:
        dropped = dropped | {name for name, _ in context.inject_headers}
    headers = [(name, value) for name, value in scope["headers"] if name not in dropped]
    headers.append((b"host", host.encode("idna") if not host.isascii() else host.encode()))
    headers.append((b"x-request-id", request_id.encode()))
    headers.extend(context.inject_headers)
    return headers


def with_param(query: str, name: str, value: str) -> str:
    """``query`` with ``name`` set to the injected credential, replacing any the caller sent."""
    kept = [p for p in query.split("&") if p and p.split("=", 1)[0] != name]
    return "&".join([*kept, f"{name}={value}"])


async def request_body(
    scope: Scope, receive: Receive, call: Call, limit: int
) -> tuple[bytes | AsyncIterator[bytes] | None, int | None]:
    """The body to forward: held in memory when small (so it can be retried), streamed otherwise."""
    declared: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise Refused(400, "bad_request", "Content-Length is not a number.") from None
        elif name == b"transfer-encoding":
            chunked = True
    if declared is not None and declared > limit:
        raise Refused(413, "too_large", f"The request body is larger than {limit} bytes.")
    if not chunked and not declared:
        return None, None
    if declared is not None and declared <= BUFFERED_BODY:
        parts = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refused(499, "client_closed", "The caller went away.")
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(parts)
        call.bytes_in = len(body)
        return body, len(body)

    first = await receive()

    async def stream() -> AsyncIterator[bytes]:
        message: Message = first
        while True:
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            call.bytes_in += len(chunk)
            if call.bytes_in > limit:
                raise TooLarge()
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
            message = await receive()

    return stream(), declared


def retry_after(response: Response) -> float | None:
    for name, value in response.headers:
        if name == b"retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def limit_headers(decision: Decision | None) -> list[tuple[bytes, bytes]]:
    if decision is None or decision.degraded:
        return []
    return [
        (b"ratelimit-limit", b"%d" % decision.limit),
        (b"ratelimit-remaining", b"%d" % decision.remaining),
        (b"ratelimit-reset", b"%d" % max(0, math.ceil(decision.reset))),
    ]


async def problem(send: Send, call: Call, refused: Refused) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": TITLES.get(refused.status, "Error"),
            "status": refused.status,
            "detail": refused.detail,
            "instance": PREFIX.rstrip("/"),
            "request_id": call.request_id,
            "decision": refused.decision,
            **refused.extra,
        }
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", call.request_id.encode()),
        *((k.lower().encode(), v.encode()) for k, v in refused.headers.items()),
        *limit_headers(call.limit),
    ]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    429: "Too Many Requests",
    499: "Client Closed Request",
    502: "Bad Gateway",
    503: "Service Unavailable",
    500: "Internal Server Error",
    504: "Gateway Timeout",
}

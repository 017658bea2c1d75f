"""The request envelope: request id, metrics, the access log and the last-resort 500, as plain ASGI.

Plain ASGI rather than ``BaseHTTPMiddleware``: it adds no task or memory stream per request
and lets streaming responses through untouched.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cathouse.platform.access import AccessLog
from cathouse.platform.context import request_id_var
from cathouse.platform.metrics import REQUEST_LATENCY, REQUESTS
from cathouse.platform.problems import log_unexpected, unexpected_error_response

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.match(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


class RequestEnvelopeMiddleware:
    def __init__(self, app: ASGIApp, *, service: str, access_log: AccessLog | None = None) -> None:
        self.app = app
        self.service = service
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _incoming_request_id(scope)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log_unexpected(exc)
            if response_started:
                raise
            status = 500
            await unexpected_error_response()(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "")
            elapsed = time.perf_counter() - started
            REQUESTS.labels(self.service, method, template, str(status)).inc()
            REQUEST_LATENCY.labels(self.service, method, template).observe(elapsed)
            if self.access_log is not None:
                # Set by the authentication dependency when the request carried a valid token.
                principal = scope["state"].get("principal")
                user_id = principal.user_id if principal is not None else None
                self.access_log(method, template, status, elapsed, request_id, user_id)
            request_id_var.reset(token)

"""The hot path: ``ANY /api/v1/proxy/{installation_id}/{path}``, as plain ASGI.

Every call a user's application makes to a cat passes here, so this sits in front of the
FastAPI app rather than behind a route, whose dependency injection and middleware layers would
run on every forwarded request (``bench/proxy.py --bare`` measures the floor without them). What
a call costs once warm: a token
check or an API-key lookup (both cached), the installation's context (cached a few seconds),
a route match, one rate-limit round trip, the upstream exchange on a kept-alive connection,
and an audit record appended to a queue that a writer flushes in batches.

The order of the checks is the order of what a caller may learn: who you are (401), whether
the installation is yours (404 otherwise, as if it did not exist), whether it runs (409),
whether the call is in the cat's map (404) and granted (403), the rate limits (429), the cat's
health (503). Every answer, allowed or refused, leaves exactly one audit record.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from cathouse.contracts.events.proxy import CredentialsAccepted, CredentialsRejected, CredentialsVerdict
from cathouse.contracts.keys import API_KEY_PREFIX
from cathouse.contracts.secrets import TokenUnavailable
from cathouse.platform.access import AccessLog
from cathouse.platform.outbox import record
from cathouse.platform.problems import log_unexpected
from cathouse.platform.security import InvalidToken, Principal, TokenVerifier
from cathouse.platform.settings import ProxySettings
from cathouse.proxy import metrics
from cathouse.proxy.audit import AuditRecord, AuditWriter, audit_path
from cathouse.proxy.breaker import CircuitBreakers
from cathouse.proxy.context import Contexts, InstallationContext
from cathouse.proxy.messages import (
    NOT_RETURNED,
    PREFIX,
    Call,
    Refused,
    TooLarge,
    bearer,
    escapes,
    forwarded_headers,
    limit_headers,
    problem,
    request_body,
    request_id,
    retry_after,
    with_param,
)
from cathouse.proxy.ratelimit import RateLimiter
from cathouse.proxy.ssrf import Blocked, Guard
from cathouse.proxy.upstream import Response, Target, UpstreamError, UpstreamPool

# Methods that can be sent again after a failure without doing twice what the caller asked.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# What a cat's endpoint map may name (HEAD wherever GET is): any other method is a 405.
PROXIED = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
ALLOW = ", ".join(sorted(PROXIED))
RETRY_STATUSES = frozenset({502, 503, 504})
# What the access log names a proxy call by: the route's template, as the router declares it.
ROUTE = PREFIX + "{installation_id}/{path:path}"


def proxied_installation(path: str) -> uuid.UUID | None:
    """The installation a proxy call is for, or None when ``path`` is not a proxy call
    (``/api/v1/proxy/audit`` and the like are the service's ordinary routes)."""
    if not path.startswith(PREFIX):
        return None
    head = path[len(PREFIX) : len(PREFIX) + 37]
    if len(head) < 36 or (len(head) == 37 and head[36] != "/"):
        return None
    return _installation_id(head[:36])


@functools.lru_cache(maxsize=4096)  # the same installations call again and again: parsed once
def _installation_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class GatewayMiddleware:
    """In front of the app's middleware and routes: a proxy call goes to the ``Proxy`` the
    service's lifespan put on ``owner.state.proxy``; everything else goes on to ``app``."""

    def __init__(self, app: ASGIApp, owner: Any) -> None:
        self.app = app
        self.state = owner.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            installation_id = proxied_installation(scope["path"])
            if installation_id is not None:
                await self.state.proxy(scope, receive, send, installation_id)
                return
        await self.app(scope, receive, send)


class Proxy:
    """Mediates proxy calls: every check, the forwarding, the audit record."""

    def __init__(
        self,
        *,
        settings: ProxySettings,
        sessions: async_sessionmaker[AsyncSession],
        contexts: Contexts,
        guard: Guard,
        pool: UpstreamPool,
        limiter: RateLimiter,
        audit: AuditWriter,
        verifier: Callable[[], TokenVerifier],
        access_log: AccessLog | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.contexts = contexts
        self.guard = guard
        self.pool = pool
        self.limiter = limiter
        self.audit = audit
        self.verifier = verifier
        self.access_log = access_log
        self.breakers = CircuitBreakers(failures=settings.breaker_failures, open_seconds=settings.breaker_open_seconds)
        self._background: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send, installation_id: uuid.UUID) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        # The path as the caller sent it (still percent-encoded), after /api/v1/proxy/{id}.
        tail = raw_path.decode("latin-1")[len(PREFIX) + 36 :]
        call = Call(
            request_id=request_id(scope),
            method=scope["method"],
            path=tail or "/",
            query=scope.get("query_string", b"").decode("latin-1"),
            started=time.perf_counter(),
        )
        try:
            await self._mediate(call, installation_id, scope, receive, send)
        except Refused as refused:
            call.decision, call.status = refused.decision, refused.status
            await problem(send, call, refused)
        except _Aborted:
            # The head went out; ending here without the last body message makes the server
            # drop the connection, so the caller cannot take a cut answer for a whole one.
            logger.warning("the cat's answer broke off", request_id=call.request_id, decision=call.decision)
        except Exception as exc:
            # In front of the app's error middleware: the last resort is here. A 500 that
            # says only the request id; the trace goes to the log.
            log_unexpected(exc)
            call.decision, call.status = "error", 500
            if call.responded:
                raise
            await problem(send, call, Refused(500, "error", "Something went wrong; quote the request id."))
        finally:
            self._account(call, installation_id)

    async def _mediate(
        self, call: Call, installation_id: uuid.UUID, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if call.method not in PROXIED:
            # Whoever asks: no installation is ever called with it.
            raise Refused(405, "method_not_allowed", f"{call.method} is never proxied.", {"Allow": ALLOW})
        context = await self._authorize(call, installation_id, scope)
        if escapes(call.path):
            # "/users/.." would match "/users/{id}" here and reach another endpoint at the cat.
            raise Refused(400, "bad_request", "The path may not contain '.' or '..' segments.")
        route = context.routes.match(call.method, call.path)
        if route is None:
            raise Refused(404, "not_found", f"{context.cat_slug} has no {call.method} {call.path}.")
        if route.permission not in context.granted:
            raise Refused(
                403,
                "no_permission",
                f"This call needs the permission {route.permission}, which was not granted.",
                permission=route.permission,
            )
        user_limit = self.settings.user_rate_per_minute
        call.limit = decision = await self.limiter.hit(
            context.id_text, context.rate_limit, context.owner_text, user_limit
        )
        if not decision.allowed:
            if decision.degraded:
                raise Refused(
                    503, "limiter_unavailable", "Rate limiting is unavailable; try again shortly.", {"Retry-After": "5"}
                )
            raise Refused(
                429,
                "rate_limited",
                f"The {decision.refused_by} rate limit of {decision.limit} calls a minute is used up.",
                {"Retry-After": str(decision.retry_after)},
            )
        wait = self.breakers.retry_after(context.cat_id)
        if wait is not None:
            raise Refused(
                503, "circuit_open", f"{context.cat_slug} is failing; calls resume shortly.", {"Retry-After": str(wait)}
            )
        try:
            destination = await self.guard.destination(context.base_url)
        except Blocked as blocked:
            raise Refused(502, "blocked_address", str(blocked)) from None
        target = Target(destination.address, destination.port, destination.scheme == "https", destination.host)
        default_port = 443 if target.tls else 80
        host = destination.host if destination.port == default_port else f"{destination.host}:{destination.port}"
        if context.oauth is not None:
            await self._access_token(context)
        body, length = await request_body(scope, receive, call, self.settings.max_request_bytes)
        response = await self._send_upstream(call, context, scope, target, host, destination.base_path, body, length)
        if response.status == 401 and context.oauth is not None and not isinstance(body, AsyncIterator):
            # The provider may have ended the token early: one refresh, and the call once more.
            response.close()
            await self._access_token(context, rejected=True)
            response = await self._send_upstream(
                call, context, scope, target, host, destination.base_path, body, length
            )
        await self._relay(call, context, response, send)

    async def _send_upstream(
        self,
        call: Call,
        context: InstallationContext,
        scope: Scope,
        target: Target,
        host: str,
        base_path: str,
        body: bytes | AsyncIterator[bytes] | None,
        length: int | None,
    ) -> Response:
        headers = forwarded_headers(scope, host, call.request_id, context)
        query = call.query
        if context.inject_query is not None:
            query = with_param(query, *context.inject_query)
        upstream_path = base_path + call.path + (f"?{query}" if query else "")
        try:
            return await self._forward(call, context, target, upstream_path, headers, body, length)
        except ValueError:
            raise Refused(
                400, "bad_request", "The path or a header holds characters that cannot be forwarded."
            ) from None
        except TooLarge:
            raise Refused(
                413, "too_large", f"The request body is larger than {self.settings.max_request_bytes} bytes."
            ) from None

    async def _access_token(self, context: InstallationContext, *, rejected: bool = False) -> None:
        try:
            await self.contexts.current_token(context, rejected=rejected)
        except TokenUnavailable as exc:
            if exc.reason == "not_connected":
                self.contexts.forget(context.id)  # its status has changed: read it afresh
                raise Refused(409, "not_connected", str(exc), current_status=context.status) from None
            raise Refused(502, "provider_unavailable", str(exc), {"Retry-After": "5"}) from None

    async def _authorize(self, call: Call, installation_id: uuid.UUID, scope: Scope) -> InstallationContext:
        token = bearer(scope)
        if token is None:
            raise Refused(
                401,
                "unauthenticated",
                "Send an access token or an installation API key as a Bearer token.",
                {"WWW-Authenticate": "Bearer"},
            )
        owner: uuid.UUID | None = None
        if token.startswith(API_KEY_PREFIX):
            key = await self.contexts.api_key(token)
            if key is None:
                raise Refused(401, "unauthenticated", "The API key is not valid.", {"WWW-Authenticate": "Bearer"})
            if key.installation_id != installation_id:
                raise Refused(404, "not_found", "No such installation.")
            call.api_key_id = key.api_key_id
        else:
            try:
                principal: Principal = await self.verifier().verify(token)
            except InvalidToken as exc:
                raise Refused(
                    401, "unauthenticated", str(exc), {"WWW-Authenticate": 'Bearer error="invalid_token"'}
                ) from None
            owner = call.user_id = principal.user_id
        context = await self.contexts.installation(installation_id)
        if context is None or (owner is not None and context.owner_id != owner):
            raise Refused(404, "not_found", "No such installation.")
        if owner is None and self.verifier().revocations.disabled(context.owner_id):
            # An API key speaks for its installation's owner: not once the owner is disabled.
            raise Refused(
                401,
                "unauthenticated",
                "The account this API key belongs to is disabled.",
                {"WWW-Authenticate": "Bearer"},
            )
        call.context = context
        call.user_id = context.owner_id
        if not context.running:
            state = context.status if context.cat_status == "published" else f"cat {context.cat_status}"
            raise Refused(
                409,
                "inactive",
                f"The installation is {state.replace('_', ' ')}; calls are not forwarded.",
                current_status=context.status,
            )
        return context

    async def _forward(
        self,
        call: Call,
        context: InstallationContext,
        target: Target,
        path: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterator[bytes] | None,
        length: int | None,
    ) -> Response:
        """The cat's answer, retried when that is safe: an idempotent call whose body we hold."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.total_timeout
        retryable = call.method in IDEMPOTENT and not isinstance(body, AsyncIterator)
        attempts = self.settings.retry_attempts if retryable else 1
        for attempt in range(1, attempts + 1):
            try:
                response = await self.pool.request(
                    target,
                    call.method,
                    path,
                    headers,
                    body,
                    content_length=length,
                    max_response_bytes=self.settings.max_response_bytes,
                    deadline=deadline,
                )
            except UpstreamError as exc:
                self.breakers.failed(context.cat_id)
                if attempt < attempts and exc.kind in ("connect", "closed") and loop.time() < deadline:
                    await asyncio.sleep(self._backoff(attempt, None))
                    continue
                if exc.kind == "timeout":
                    raise Refused(504, "upstream_timeout", f"{context.cat_slug} did not answer in time.") from None
                if exc.kind == "too_large":
                    raise Refused(502, "too_large", f"{context.cat_slug}'s answer is larger than allowed.") from None
                raise Refused(502, "upstream_error", f"{context.cat_slug} could not be reached.") from None
            if response.status in RETRY_STATUSES:
                self.breakers.failed(context.cat_id)
                if attempt < attempts and loop.time() < deadline:
                    wait = self._backoff(attempt, retry_after(response))
                    if loop.time() + wait < deadline:
                        response.close()
                        await asyncio.sleep(wait)
                        continue
            else:
                self.breakers.succeeded(context.cat_id)
            return response
        raise AssertionError("the last attempt returns or raises")  # pragma: no cover

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.settings.retry_max_wait)
        # Full jitter: retries of many callers do not arrive together.
        return random.uniform(0, min(self.settings.retry_backoff * 2 ** (attempt - 1), self.settings.retry_max_wait))  # noqa: S311

    async def _relay(self, call: Call, context: InstallationContext, response: Response, send: Send) -> None:
        call.upstream_status = call.status = response.status
        if response.status == 401:
            self._report(
                context, CredentialsRejected(installation_id=context.id, cat_id=context.cat_id, upstream_status=401)
            )
        elif response.status < 400 and context.status == "credentials_invalid":
            self._report(context, CredentialsAccepted(installation_id=context.id, cat_id=context.cat_id))
        headers = [(n, v) for n, v in response.headers if n not in NOT_RETURNED]
        headers.append((b"x-request-id", call.request_id.encode()))
        headers.extend(limit_headers(call.limit))
        if response.status >= 500:
            call.decision = "upstream_error"
        call.responded = True
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if response.complete:
            # The usual small answer came whole with its head: one message, not a chunk and an end.
            body = await response.read()
            call.bytes_out = len(body)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        try:
            async for chunk in response.body():
                call.bytes_out += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as exc:
            # The status is sent: all that is left is to cut the answer short, which the caller sees.
            response.close()
            call.decision = "upstream_timeout" if exc.kind == "timeout" else "upstream_error"
            raise _Aborted() from None
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _report(self, context: InstallationContext, verdict: CredentialsVerdict) -> None:
        """Tell the installation service, once per change seen by this process, off the hot path."""
        if context.reported == verdict.type:
            return
        context.reported = verdict.type
        task = asyncio.create_task(self._record(context, verdict))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _record(self, context: InstallationContext, verdict: CredentialsVerdict) -> None:
        try:
            async with self.sessions() as session, session.begin():
                record(session, verdict)
            self.contexts.forget(context.id)
        except Exception as exc:  # the next call reports it again
            context.reported = None
            logger.warning("could not record the cat's verdict on credentials", error=type(exc).__name__)

    def _account(self, call: Call, installation_id: uuid.UUID) -> None:
        context = call.context
        latency = time.perf_counter() - call.started
        extra = context.inject_query[:1] if context is not None and context.inject_query else ()
        self.audit.record(
            AuditRecord(
                at=datetime.now(UTC),
                request_id=call.request_id,
                method=call.method,
                path=audit_path(call.path, call.query, extra),
                decision=call.decision,
                status=call.status,
                user_id=call.user_id,
                owner_id=context.owner_id if context else None,
                installation_id=installation_id if context else None,
                cat_id=context.cat_id if context else None,
                api_key_id=call.api_key_id,
                upstream_status=call.upstream_status,
                latency_ms=latency * 1000,
                bytes_in=call.bytes_in,
                bytes_out=call.bytes_out,
            )
        )
        metrics.observe(context.cat_slug if context else "", call.decision, latency, call.upstream_status)
        if self.access_log is not None:
            self.access_log(call.method, ROUTE, call.status, latency, call.request_id, call.user_id)

    async def drain(self) -> None:
        """Wait for the reports still being written (graceful shutdown)."""
        if self._background:
            await asyncio.wait(self._background, timeout=5)


class _Aborted(Exception):
    """The answer was cut short after its head was sent."""

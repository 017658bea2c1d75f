"""Per-request context that log lines and error bodies read."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
service_var: ContextVar[str] = ContextVar("service", default="cathouse")

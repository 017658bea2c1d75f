from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.platform.context import request_id_var
from cathouse.platform.outbox.models import OutboxEvent


class Recordable(Protocol):
    """An event as the outbox needs it. ``cathouse.contracts.events`` models are these; the kernel
    does not import them, so it names only what it reads."""

    @property
    def type(self) -> str: ...

    @property
    def schema_version(self) -> int: ...

    @property
    def aggregate(self) -> str: ...

    @property
    def aggregate_id(self) -> str: ...

    def payload(self) -> dict[str, Any]: ...


def record(session: AsyncSession, event: Recordable) -> OutboxEvent:
    """Add a typed event to the caller's transaction: what every service publishes with."""
    return record_event(
        session,
        aggregate_type=event.aggregate,
        aggregate_id=event.aggregate_id,
        event_type=event.type,
        payload=event.payload(),
        schema_version=event.schema_version,
    )


def record_event(
    session: AsyncSession,
    *,
    aggregate_type: str,
    aggregate_id: str,
    event_type: str,
    payload: dict[str, Any],
    schema_version: int = 1,
) -> OutboxEvent:
    """Add an event to the caller's transaction; it is relayed only if that transaction commits.

    The untyped form, for the kernel's own tests; services call :func:`record` with a model."""
    event = OutboxEvent(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        event_type=event_type,
        payload=payload,
        schema_version=schema_version,
        request_id=request_id_var.get(),
    )
    session.add(event)
    return event

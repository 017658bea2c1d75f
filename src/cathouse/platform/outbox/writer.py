from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.platform.context import request_id_var
from cathouse.platform.outbox.models import OutboxEvent


def record_event(
    session: AsyncSession,
    *,
    aggregate_type: str,
    aggregate_id: str,
    event_type: str,
    payload: dict[str, Any],
    schema_version: int = 1,
) -> OutboxEvent:
    """Add an event to the caller's transaction; it is relayed only if that transaction commits."""
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

"""What an event looks like on a broker: the one wire format every adapter uses.

A message's body is UTF-8 JSON of every field of :class:`~cathouse.platform.outbox.relay.Event`
but ``attempts``::

    {"id": "3f0c…", "seq": 42, "aggregate_type": "installation", "aggregate_id": "9b1e…",
     "event_type": "installation.created", "schema_version": 1, "payload": {…},
     "occurred_at": "2026-12-01T10:00:00.123456+00:00", "request_id": "…" | null}

``payload``'s shape is the event type's at ``schema_version`` (its model in
``cathouse.contracts.events``; ``GET /api/v1/events/asyncapi.json`` describes this envelope too).
A consumer sees ``attempts`` as the number of earlier deliveries of this message to its group,
so ``0`` the first time.

The message key is ``"<aggregate_type>:<aggregate_id>"``. Everything a broker orders by (Kafka's
partition, the partition of a NATS subject or a Redis stream) derives from it, so one aggregate's
events arrive in the order the outbox wrote them.
"""

from __future__ import annotations

import json
import re
import zlib
from datetime import datetime
from typing import Any

from cathouse.platform.outbox.relay import Event

CONTENT_TYPE = "application/json"
EVENT_ID_HEADER = "cathouse-event-id"
KEY_HEADER = "cathouse-key"
_FIELDS = (
    "id",
    "seq",
    "aggregate_type",
    "aggregate_id",
    "event_type",
    "schema_version",
    "payload",
    "occurred_at",
    "request_id",
)


class WireError(ValueError):
    """A message that is not a Cat House event (it is acknowledged and logged, never retried)."""


def key_of(event: Event) -> str:
    return f"{event.aggregate_type}:{event.aggregate_id}"


def partition_of(key: str, partitions: int) -> int:
    """A partition of ``key`` that every process computes alike (``hash()`` differs per process)."""
    return zlib.crc32(key.encode()) % partitions


_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def token(name: str) -> str:
    """``name`` as one token of a NATS subject or consumer name, or a Redis key part."""
    return _TOKEN.sub("_", name) or "_"


def encode(event: Event) -> bytes:
    body: dict[str, Any] = {name: getattr(event, name) for name in _FIELDS}
    body["occurred_at"] = event.occurred_at.isoformat()
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes, *, attempts: int = 0) -> Event:
    try:
        body = json.loads(data)
        return Event(
            id=str(body["id"]),
            seq=int(body["seq"]),
            aggregate_type=str(body["aggregate_type"]),
            aggregate_id=str(body["aggregate_id"]),
            event_type=str(body["event_type"]),
            schema_version=int(body["schema_version"]),
            payload=dict(body["payload"]),
            occurred_at=datetime.fromisoformat(body["occurred_at"]),
            request_id=None if body.get("request_id") is None else str(body["request_id"]),
            attempts=attempts,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise WireError(f"not a Cat House event: {exc}") from exc

"""Every event the platform publishes, one typed model per type and version.

A model's class constants say what the outbox row carries (``type``, ``schema_version``,
``aggregate``); its fields are the payload, and ``payload()`` is the JSON the outbox stores.
Producers build a model and hand it to the outbox writer; consumers turn a row back into one with
:func:`parse`. No payload carries a secret, a credential or a setting's value.

Versioning: adding an optional field keeps ``schema_version``; removing a field, or changing its
type or meaning, raises it, and the new version gets a model of its own beside the old one.

What a consumer does with what it does not know: :func:`parse` raises :class:`UnknownEvent`
(``reason`` ``"unknown_type"``, or ``"unknown_version"`` for a version newer, or older, than the
models here) and the consumer skips the event and counts or logs it, never retries it: a producer
may ship a type or a version before its consumers learn it, and retrying would only stall the
aggregate's later events. A payload its model refuses raises pydantic's ``ValidationError`` (a
``ValueError``): the activity consumer skips it as ``malformed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from cathouse.contracts.events import auth, catalog, installation, proxy
from cathouse.contracts.events.base import DomainEvent

EVENTS: tuple[type[DomainEvent], ...] = (*catalog.EVENTS, *installation.EVENTS, *proxy.EVENTS, *auth.EVENTS)
REGISTRY: dict[tuple[str, int], type[DomainEvent]] = {(e.type, e.schema_version): e for e in EVENTS}
NAMES: frozenset[str] = frozenset(e.type for e in EVENTS)

SkipReason = Literal["unknown_type", "unknown_version"]


class UnknownEvent(LookupError):
    """An event type, or a version of one, that this code has no model for: skip it."""

    def __init__(self, event_type: str, schema_version: int, reason: SkipReason) -> None:
        super().__init__(f"{event_type} v{schema_version}: {reason}")
        self.reason: SkipReason = reason


def model_of(event_type: str, schema_version: int) -> type[DomainEvent]:
    found = REGISTRY.get((event_type, schema_version))
    if found is None:
        raise UnknownEvent(event_type, schema_version, "unknown_version" if event_type in NAMES else "unknown_type")
    return found


def parse(event_type: str, schema_version: int, payload: Mapping[str, Any]) -> DomainEvent:
    """The event's model; :class:`UnknownEvent` or pydantic's ``ValidationError`` if there is none."""
    return model_of(event_type, schema_version).model_validate(payload)


__all__ = ["EVENTS", "NAMES", "REGISTRY", "DomainEvent", "UnknownEvent", "model_of", "parse"]

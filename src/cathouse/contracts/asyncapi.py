"""An AsyncAPI 3.0 document of everything the platform sends, built from the models alone.

Two kinds of channel: one per event type (what a consumer of the outbox, or of a broker, receives)
and one for the provisioning webhooks sent to a cat. An event's message is its wire envelope
(``cathouse.platform.broker.wire``: every broker and the in-process relay carry the same fields)
with the event's model as ``payload``. Model schemas keep their field descriptions; nested
definitions move to ``components.schemas`` so every ``$ref`` resolves inside the document.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cathouse.contracts import webhooks
from cathouse.contracts.events import EVENTS, DomainEvent

ASYNCAPI_VERSION = "3.0.0"
_REF = "#/components/schemas/{model}"

_ENVELOPE_HEADERS = {
    "type": "object",
    "description": "Set on a broker's messages (Kafka, NATS, Redis); the in-process relay has none.",
    "properties": {
        "cathouse-event-id": {"type": "string", "format": "uuid", "description": "The event's id, as in the body."},
        "cathouse-key": {
            "type": "string",
            "description": '"<aggregate_type>:<aggregate_id>": what a broker orders by (NATS only).',
        },
    },
}
_WEBHOOK_HEADERS = {
    "type": "object",
    "required": sorted(webhooks.SIGNATURE_HEADERS),
    "properties": {name: {"type": "string", "description": text} for name, text in webhooks.SIGNATURE_HEADERS.items()},
}


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """``model``'s JSON Schema, its nested definitions moved into ``schemas``."""
    schema = model.model_json_schema(ref_template=_REF)
    schemas.update(schema.pop("$defs", {}))
    return schema


def _key(event: type[DomainEvent]) -> str:
    return f"{event.type}.v{event.schema_version}"


def _envelope(event: type[DomainEvent]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [
            "id",
            "seq",
            "aggregate_type",
            "aggregate_id",
            "event_type",
            "schema_version",
            "payload",
            "occurred_at",
            "request_id",
        ],
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "The event's id: apply it once."},
            "seq": {"type": "integer", "description": "The outbox's order; one aggregate's events arrive in it."},
            "aggregate_type": {"const": event.aggregate},
            "aggregate_id": {"type": "string", "description": f"The {event.aggregate}'s id ({event.aggregate_key})."},
            "event_type": {"const": event.type},
            "schema_version": {"const": event.schema_version},
            "payload": {"$ref": _REF.format(model=_key(event))},
            "occurred_at": {"type": "string", "format": "date-time", "description": "When the change committed."},
            "request_id": {
                "type": ["string", "null"],
                "description": "The X-Request-ID of the request that made the change, if one did.",
            },
        },
    }


def document(version: str) -> dict[str, Any]:
    """The AsyncAPI document; ``version`` is the platform's."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for event in EVENTS:
        key = _key(event)
        schemas[key] = _schema(event, schemas)
        messages[key] = {
            "name": event.type,
            "title": f"{event.type} (schema_version {event.schema_version})",
            "summary": schemas[key].get("description", ""),
            "contentType": "application/json",
            "headers": _ENVELOPE_HEADERS,
            "payload": _envelope(event),
        }
        channels[event.type] = {
            "address": None,
            "title": event.type,
            "description": (
                f"The {event.type} events. Every event travels the one events stream (keyed by "
                f'"<aggregate_type>:<aggregate_id>"); a consumer tells them apart by event_type.'
            ),
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
        }
        operations[f"publish.{event.type}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{event.type}"},
            "messages": [{"$ref": f"#/channels/{event.type}/messages/{key}"}],
        }
    schemas["Webhook"] = _schema(webhooks.Webhook, schemas)
    hooks: dict[str, Any] = {}
    for kind, meaning in webhooks.MEANINGS.items():
        key = f"webhook.{kind}"
        messages[key] = {
            "name": kind,
            "title": f"Webhook {kind}",
            "summary": meaning,
            "contentType": "application/json",
            "headers": _WEBHOOK_HEADERS,
            "payload": {"allOf": [{"$ref": _REF.format(model="Webhook")}, {"properties": {"type": {"const": kind}}}]},
        }
        hooks[key] = {"$ref": f"#/components/messages/{key}"}
    channels["webhooks"] = {
        "address": None,
        "title": "Webhooks to the cat",
        "description": (
            "POSTed to the installed version's webhook_url, signed in the Standard Webhooks form and "
            "retried with backoff until the cat answers 2xx. " + (webhooks.__doc__ or "").strip()
        ),
        "messages": hooks,
    }
    operations["webhook"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/webhooks"},
        "messages": [{"$ref": f"#/channels/webhooks/messages/{key}"} for key in hooks],
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Cat House events",
            "version": version,
            "description": (
                "Every domain event the platform publishes, and the provisioning webhooks it sends to cats. "
                "A consumer skips (and counts) an event whose event_type or schema_version it does not know; "
                "adding a field keeps an event's schema_version, removing or changing one raises it."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }

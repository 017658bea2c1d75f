"""The AsyncAPI document: valid against the official AsyncAPI 3.0 schema, complete, and served by
the activity service alone as by the one-process platform."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from cathouse.contracts import webhooks
from cathouse.contracts.asyncapi import document
from cathouse.contracts.events import EVENTS, DomainEvent
from cathouse.platform.broker import wire
from cathouse.platform.outbox.relay import Event
from cathouse.platform.settings import Settings
from cathouse.services import create_platform_app
from tests.contracts.test_events import full_payload

SCHEMA = json.loads((Path(__file__).parent / "asyncapi" / "asyncapi-3.0.0.schema.json").read_text())
VALIDATOR = jsonschema_rs.validator_for(SCHEMA)


def problems(doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message[:200]}" for e in VALIDATOR.iter_errors(doc)]


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_document_is_valid_asyncapi_3() -> None:
    assert problems(document("1.2.3")) == []


def test_the_validator_refuses_what_asyncapi_3_does_not_allow() -> None:
    # The check above is worth something only if the schema bites: AsyncAPI 2's "publish" is gone.
    doc = document("1.2.3")
    doc["operations"]["webhook"]["action"] = "publish"
    del doc["info"]["title"]
    assert len(problems(doc)) >= 2


def test_every_event_and_webhook_has_a_channel_and_every_ref_resolves() -> None:
    doc = document("1.2.3")
    assert set(doc["channels"]) == {e.type for e in EVENTS} | {"webhooks"}
    hooks = [resolve(doc, r["$ref"]) for r in doc["channels"]["webhooks"]["messages"].values()]
    assert {h["name"] for h in hooks} == set(webhooks.MEANINGS)
    assert set(hooks[0]["headers"]["properties"]) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    for ref in refs(doc):
        resolve(doc, ref)  # raises KeyError for a dangling one


def test_a_message_is_the_wire_envelope_around_the_payload_model() -> None:
    doc = document("1.2.3")
    message = doc["components"]["messages"]["installation.status_changed.v1"]
    envelope = message["payload"]
    assert envelope["properties"]["event_type"] == {"const": "installation.status_changed"}
    assert envelope["properties"]["aggregate_type"] == {"const": "installation"}
    assert {"id", "occurred_at", "request_id", "schema_version", "payload"} <= set(envelope["required"])
    payload = resolve(doc, envelope["properties"]["payload"]["$ref"])
    assert "from" in payload["required"]
    assert payload["properties"]["to"]["enum"][0] == "pending"
    assert payload["properties"]["by"]["description"]
    assert message["summary"].startswith("An installation moved through its lifecycle")


@pytest.mark.parametrize("model", EVENTS, ids=lambda m: m.type)
def test_what_the_broker_sends_is_what_the_document_describes(model: type[DomainEvent]) -> None:
    # The envelope is written twice, as code in the kernel's wire format and as a schema in the
    # contracts (neither may import the other): an event the broker encodes must fit the schema.
    doc = document("1.2.3")
    message = doc["components"]["messages"][f"{model.type}.v{model.schema_version}"]
    validator = jsonschema_rs.validator_for({**message["payload"], "components": doc["components"]})
    payload = full_payload(model)
    event = Event(
        id=str(uuid.uuid4()),
        seq=7,
        aggregate_type=model.aggregate,
        aggregate_id=str(payload[model.aggregate_key]),
        event_type=model.type,
        schema_version=model.schema_version,
        payload=payload,
        occurred_at=datetime.now(UTC),
        request_id=None,
        attempts=0,
    )
    sent = json.loads(wire.encode(event))
    assert [e.message for e in validator.iter_errors(sent)] == []
    assert not validator.is_valid({**sent, "event_type": "cat.renamed"})


@pytest.mark.parametrize("how", ["activity alone", "one process"])
async def test_the_activity_service_serves_it(
    how: str,
    service_client: Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]],
    settings: Settings,
    app_client: Callable[[Any], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    app = service_client("activity") if how == "activity alone" else app_client(create_platform_app(settings))
    async with app as client:
        response = await client.get("/api/v1/events/asyncapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    assert problems(served) == []
    assert served["asyncapi"] == "3.0.0"
    assert "cat.published" in served["channels"]

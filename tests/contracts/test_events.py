"""The registry of events: every model round-trips through the JSON the outbox stores, says what
it means, and ``parse`` refuses what it has no model for in the way the module documents."""

from __future__ import annotations

import uuid
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from cathouse.contracts.events import EVENTS, NAMES, REGISTRY, DomainEvent, UnknownEvent, parse
from cathouse.contracts.events.auth import UserRegistered, UserRolesChanged
from cathouse.contracts.events.installation import InstallationStatus, InstallationStatusChanged
from cathouse.installation import lifecycle


def example(schema: dict[str, Any]) -> Any:
    """A value ``schema`` (a field's JSON Schema, as pydantic writes it) accepts."""
    if "anyOf" in schema:
        return example(next(s for s in schema["anyOf"] if s.get("type") != "null"))
    if "enum" in schema:
        return schema["enum"][-1]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "string":
        return str(uuid.uuid4()) if schema.get("format") == "uuid" else "points:read"
    if kind == "integer":
        return max(schema.get("minimum", 3), min(schema.get("maximum", 3), 3))
    if kind == "boolean":
        return True
    if kind == "array":
        return [example(schema["items"])]
    raise AssertionError(f"no example for {schema}")


def full_payload(model: type[DomainEvent]) -> dict[str, Any]:
    """Every field the model has, the optional ones too, as the outbox would store them."""
    return {name: example(field) for name, field in model.model_json_schema()["properties"].items()}


@pytest.mark.parametrize("model", EVENTS, ids=lambda m: m.type)
def test_every_model_round_trips_through_its_stored_json(model: type[DomainEvent]) -> None:
    payload = full_payload(model)
    parsed = parse(model.type, model.schema_version, payload)
    assert type(parsed) is model
    assert parsed.payload() == payload
    assert parsed.aggregate_id == payload[model.aggregate_key]
    # Fields present only sometimes are left out when absent, not written as null.
    lean = {k: v for k, v in payload.items() if k not in model.sometimes}
    assert parse(model.type, model.schema_version, lean).payload() == lean


@pytest.mark.parametrize("model", EVENTS, ids=lambda m: m.type)
def test_every_model_says_what_happened_and_what_each_field_means(model: type[DomainEvent]) -> None:
    assert (model.__doc__ or "").strip()
    assert model.aggregate in ("cat", "installation", "user")
    for name, field in model.model_fields.items():
        assert field.description, f"{model.type}.{name}"
    assert model.sometimes <= {f.alias or n for n, f in model.model_fields.items()}


def test_one_model_per_type_and_version() -> None:
    assert len(REGISTRY) == len(EVENTS)
    assert {e.type for e in EVENTS} == NAMES


def test_unknown_types_and_versions_are_told_apart_and_bad_payloads_refused() -> None:
    with pytest.raises(UnknownEvent) as unknown:
        parse("cat.teleported", 1, {})
    assert unknown.value.reason == "unknown_type"
    with pytest.raises(UnknownEvent) as newer:
        parse(InstallationStatusChanged.type, InstallationStatusChanged.schema_version + 1, {})
    assert newer.value.reason == "unknown_version"
    payload = full_payload(InstallationStatusChanged) | {"to": "teleported"}
    with pytest.raises(ValidationError):
        parse(InstallationStatusChanged.type, 1, payload)


def test_aliases_and_actors_serialize_as_the_payloads_always_did() -> None:
    installation, user = uuid.uuid4(), uuid.uuid4()
    moved = InstallationStatusChanged(
        installation_id=installation,
        user_id=user,
        cat_id=uuid.uuid4(),
        version="1.0.0",
        from_="active",
        to="suspended",
        reason="pause",
        by=None,
    )
    assert moved.payload()["from"] == "active"
    assert "from_" not in moved.payload()
    assert "by_admin" not in moved.payload()
    assert UserRolesChanged(user_id=user, roles=["user", "admin"], by="cli").payload()["by"] == "cli"
    assert UserRegistered(user_id=user, display_name="Kit").payload() == {"user_id": str(user), "display_name": "Kit"}
    with pytest.raises(ValidationError):
        UserRolesChanged.model_validate({"user_id": str(user), "roles": [], "by": "someone"})


def test_the_statuses_events_carry_are_the_lifecycle_s() -> None:
    assert set(get_args(InstallationStatus)) == set(lifecycle.TRANSITIONS)

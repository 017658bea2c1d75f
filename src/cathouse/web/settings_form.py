"""A form from a version's settings JSON Schema, and the form's answers back as settings and secrets.

Each property of the schema becomes one field: a text, number or password input, a checkbox
for a boolean, a select for an ``enum``; its ``title`` is the label, its ``description`` the
hint, its ``default`` the starting value. A ``writeOnly`` property is a secret: a password
input named ``secrets.<name>`` (the API's ``secrets`` object) whose value is never written back
into a page, not even when the form is shown again with a problem. The others are named
``settings.<name>``, so the API's problem about ``body.settings.<name>`` lands on its field.

Values are converted to the schema's type when they can be ("3" for an integer is 3); what
cannot be converted is sent as typed, and the API's validator says in words what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

KINDS = ("string", "integer", "number", "boolean")


@dataclass(frozen=True)
class SettingField:
    key: str
    label: str
    hint: str | None
    kind: str  # one of KINDS, or "json" for what a plain input cannot hold (objects, arrays)
    choices: tuple[Any, ...]
    default: Any
    required: bool
    secret: bool
    limits: Markup  # the schema's bounds as the input's own attributes (min, max, maxlength)

    @property
    def name(self) -> str:
        return f"{'secrets' if self.secret else 'settings'}.{self.key}"

    @property
    def input_type(self) -> str:
        if self.secret:
            return "password"
        if self.kind == "json":
            return "textarea"
        return "number" if self.kind in ("integer", "number") else "text"

    def shown(self, value: Any) -> str:
        """``value`` as the field shows it: the option's text, the number's digits."""
        if self.kind == "json":
            return json.dumps(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)


def _resolved(schema: Mapping[str, Any], node: Any) -> Mapping[str, Any]:
    """``node``, or the definition its local ``$ref`` names (``#/$defs/level``)."""
    if not isinstance(node, Mapping):
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        return {**(target if isinstance(target, Mapping) else {}), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _kind(node: Mapping[str, Any]) -> str:
    declared = node.get("type")
    types = [declared] if isinstance(declared, str) else list(declared or [])
    named = [t for t in types if t != "null"]
    if not named and "enum" in node:
        return "string"
    kind = named[0] if named else "string"
    return kind if kind in KINDS else "json"


def _limits(node: Mapping[str, Any], kind: str) -> Markup:
    wanted = {
        "min": node.get("minimum") if kind in ("integer", "number") else None,
        "max": node.get("maximum") if kind in ("integer", "number") else None,
        "maxlength": node.get("maxLength") if kind == "string" else None,
        "minlength": node.get("minLength") if kind == "string" else None,
        "step": "1" if kind == "integer" else "any" if kind == "number" else None,
    }
    return Markup(" ").join(Markup('{}="{}"').format(k, escape(str(v))) for k, v in wanted.items() if v is not None)


def fields(schema: Mapping[str, Any]) -> list[SettingField]:
    """The form's fields, in the schema's order."""
    properties = schema.get("properties")
    required = set(schema.get("required") or ())
    found = []
    for key, raw in (properties if isinstance(properties, Mapping) else {}).items():
        node = _resolved(schema, raw)
        kind = _kind(node)
        choices = tuple(node["enum"]) if isinstance(node.get("enum"), list) else ()
        found.append(
            SettingField(
                key=key,
                label=str(node.get("title") or key.replace("_", " ").capitalize()),
                hint=str(node["description"]) if node.get("description") else None,
                kind=kind,
                choices=choices,
                default=node.get("default"),
                required=key in required,
                secret=node.get("writeOnly") is True,
                limits=_limits(node, kind),
            )
        )
    return found


def defaults(form_fields: list[SettingField]) -> dict[str, str]:
    """What the fields start with: the schema's defaults (a secret has none to show)."""
    return {f.name: f.shown(f.default) for f in form_fields if not f.secret and f.default is not None}


def _converted(field: SettingField, raw: str) -> Any:
    if field.choices:
        return next((choice for choice in field.choices if field.shown(choice) == raw), raw)
    try:
        if field.kind == "integer":
            return int(raw)
        if field.kind == "number":
            number = float(raw)
            return int(number) if number.is_integer() and "." not in raw else number
        if field.kind == "json":
            return json.loads(raw)
    except ValueError:
        return raw  # the API says what is wrong with it, next to the field
    return raw


def read(
    form_fields: list[SettingField], form: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The posted form as ``(settings, secrets, values)``: what the API takes, and what the form
    shows again if the API refuses it (never a secret). A field left empty is left out, so the
    schema's default applies; a checkbox left unticked is ``false``."""
    settings: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    values: dict[str, str] = {}
    for field in form_fields:
        posted = form.get(field.name)
        raw = posted if isinstance(posted, str) else ""
        if field.secret:
            if raw:
                secrets[field.key] = raw
            continue
        if field.kind == "boolean" and not field.choices:
            settings[field.key] = raw == "true"
            values[field.name] = "true" if raw == "true" else "false"
            continue
        values[field.name] = raw
        if raw.strip():
            settings[field.key] = _converted(field, raw.strip())
    return settings, secrets, values

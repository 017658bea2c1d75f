"""An installer's settings and secrets, checked against the version's settings schema.

Settings and secrets are checked apart: settings against the schema without its secret
(``writeOnly``) fields, secrets against those fields alone. A problem with a secret never
quotes the value: error messages are returned to the client.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from cathouse.contracts.reads import VersionInfo
from cathouse.platform.errors import CatHouseError


class InvalidSettings(CatHouseError):
    """Settings or secrets that break the version's settings schema (`errors` name each)."""

    status = 422
    title = "Unprocessable Content"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        summary = "; ".join(f"{e['loc']}: {e['message']}" for e in errors[:5])
        super().__init__(f"The request is not valid: {summary}", errors=errors)


def _part(schema: dict[str, Any], names: set[str], *, keep: bool) -> dict[str, Any]:
    """The schema restricted to (keep=True) or stripped of (keep=False) the named properties."""
    properties = {k: v for k, v in schema.get("properties", {}).items() if (k in names) == keep}
    required = [r for r in schema.get("required", []) if (r in names) == keep]
    part = {k: v for k, v in schema.items() if k not in ("properties", "required")}
    part.update(properties=properties, required=required)
    if keep:
        part["additionalProperties"] = False
    return part


def _errors(schema: dict[str, Any], instance: dict[str, Any], loc: str, *, secret: bool) -> list[dict[str, str]]:
    found = []
    for error in jsonschema_rs.validator_for(schema).iter_errors(instance):
        kind = type(error.kind).__name__
        path = [str(p) for p in error.instance_path]
        if kind == "Required":
            path = [str(error.kind.property)]  # type: ignore[attr-defined]
            message = "is required"
        elif kind == "AdditionalProperties":
            path = [str(u) for u in error.kind.unexpected][:1]  # type: ignore[attr-defined]
            message = "is not a field of this cat's settings"
        else:
            message = f"is not valid ({kind})" if secret else error.message
        found.append({"loc": ".".join([loc, *path]), "message": message, "type": kind})
    return found


def check_settings(version: VersionInfo, settings: dict[str, Any], loc: str = "body.settings") -> None:
    secrets = set(version.secret_fields)
    errors = [
        {"loc": f"{loc}.{name}", "message": "is a secret field: send it in `secrets`", "type": "secret"}
        for name in settings
        if name in secrets
    ]
    errors += _errors(_part(version.settings_schema, secrets, keep=False), settings, loc, secret=False)
    if errors:
        raise InvalidSettings(errors)


def check_secrets(version: VersionInfo, secrets: dict[str, str], loc: str = "body.secrets") -> None:
    errors = _errors(_part(version.settings_schema, set(version.secret_fields), keep=True), secrets, loc, secret=True)
    if errors:
        raise InvalidSettings(errors)

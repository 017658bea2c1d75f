"""Make the published OpenAPI tell the truth about errors: every one is problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from cathouse.platform.problems import PROBLEM_JSON, Problem
from cathouse.platform.security.dependencies import OPTIONAL_BEARER

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": _PROBLEM_REF}}


def _optional_security(schema: dict[str, Any]) -> None:
    """Where a bearer token is optional, say so: the bearer scheme or no security at all."""
    schemes = schema.get("components", {}).get("securitySchemes", {})
    if schemes.pop(OPTIONAL_BEARER, None) is None:
        return
    schemes.setdefault("HTTPBearer", {"type": "http", "scheme": "bearer"})
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            security = operation.get("security")
            if not security or {OPTIONAL_BEARER: []} not in security:
                continue
            rest = [s for s in security if s != {OPTIONAL_BEARER: []}]
            # Required elsewhere in the same operation (a dependency that needs a user): required.
            operation["security"] = rest or [{"HTTPBearer": []}, {}]


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for defn in components["Problem"].pop("$defs", {}).items():
            components.setdefault(defn[0], defn[1])
        for methods in schema.get("paths", {}).values():
            for operation in methods.values():
                responses = operation.setdefault("responses", {})
                for code, response in responses.items():
                    if code.startswith(("4", "5")):
                        response["content"] = _problem_content()
                responses.setdefault("default", {"description": "An error", "content": _problem_content()})
        _optional_security(schema)
        # FastAPI's own 422 models are replaced by Problem; drop them when nothing refers to them.
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

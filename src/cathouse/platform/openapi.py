"""Make the published OpenAPI tell the truth about errors: every one is problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts

from cathouse.platform.problems import PROBLEM_JSON, Problem
from cathouse.platform.schemas import settle_http_urls
from cathouse.platform.security.dependencies import OPTIONAL_BEARER

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_BEARER_SCHEME = {"type": "http", "scheme": "bearer"}
# For a route that reads the bearer token itself rather than through a dependency (forward-auth,
# the proxy's gateway): ``openapi_extra=BEARER_REQUIRED`` says it needs one.
BEARER_REQUIRED: dict[str, Any] = {"security": [{"HTTPBearer": []}]}

# Served, and deliberately not in the published document (tests/test_openapi.py holds every app to
# this list): the document itself and its docs page with its files, which are not the API; and
# Prometheus's scrape target, which answers its own token and text format to a scraper.
UNPUBLISHED = frozenset(
    {
        "/api/v1/openapi.json",
        "/api/v1/docs",
        "/api/v1/docs/static/LICENSE",
        "/api/v1/docs/static/{name}",
        "/metrics",
    }
)


def served_paths(app: FastAPI) -> set[str]:
    """Every path template an HTTP route of ``app`` answers, as OpenAPI spells it (no ``:path``)."""
    return {c.path_format for c in iter_route_contexts(app.routes) if c.path_format is not None and c.methods}


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": _PROBLEM_REF}}


def _optional_security(schema: dict[str, Any]) -> None:
    """Where a bearer token is optional, say so: the bearer scheme or no security at all."""
    schemes = schema.get("components", {}).get("securitySchemes", {})
    if schemes.pop(OPTIONAL_BEARER, None) is None:
        return
    schemes.setdefault("HTTPBearer", _BEARER_SCHEME)
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            security = operation.get("security")
            if not security or {OPTIONAL_BEARER: []} not in security:
                continue
            rest = [s for s in security if s != {OPTIONAL_BEARER: []}]
            # Required elsewhere in the same operation (a dependency that needs a user): required.
            operation["security"] = rest or [{"HTTPBearer": []}, {}]


def _parameters_without_null(schema: dict[str, Any]) -> None:
    """A query, header or path parameter cannot be sent as null: leaving it out is its None."""
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                published = parameter.get("schema", {})
                branches = published.get("anyOf")
                if branches and {"type": "null"} in branches:
                    rest = [branch for branch in branches if branch != {"type": "null"}]
                    del published["anyOf"]
                    published.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
                    if published.get("default", ...) is None:
                        del published["default"]


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
        _parameters_without_null(schema)
        settle_http_urls(schema, allow_http=app.state.settings.catalog.allow_http)
        if any(
            operation.get("security") == BEARER_REQUIRED["security"]
            for methods in schema.get("paths", {}).values()
            for operation in methods.values()
        ):
            schema["components"].setdefault("securitySchemes", {}).setdefault("HTTPBearer", _BEARER_SCHEME)
        # FastAPI's own 422 models are replaced by Problem; drop them when nothing refers to them.
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

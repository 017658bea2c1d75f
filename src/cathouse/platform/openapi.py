"""Make the published OpenAPI tell the truth, in a shape SDK generators can use.

Every error is problem+json (one ``Problem`` component) and each status a route can answer is
declared: the ones its domain errors carry (``responses=problems(...)``), 401 where a principal
is needed, 403 where a role is, 422 where there is input. The success response stays the success
model, so a generated client parses a 200 as what it is. Operation ids are ``tag_action``
(``installations_list``): the names a generated SDK's functions get.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from cathouse.platform.errors import CatHouseError
from cathouse.platform.problems import PROBLEM_JSON, Problem
from cathouse.platform.schemas import settle_http_urls
from cathouse.platform.security.dependencies import OPTIONAL_BEARER, admin_principal, developer_principal

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_BEARER_SCHEME = {"type": "http", "scheme": "bearer"}
# For a route that reads the bearer token itself rather than through a dependency (forward-auth):
# ``openapi_extra=BEARER_REQUIRED`` says it needs one.
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


def operation_id(route: APIRoute) -> str:
    """``tag_action``: the route's first tag and its name (``name=``, else its function's)."""
    tag = re.sub(r"\W+", "_", str(route.tags[0]) if route.tags else "api").lower()
    return f"{tag}_{route.name}"


def _described(error: type[CatHouseError]) -> str:
    """What an error class says about itself: its docstring's first paragraph, else its name in words."""
    own = error.__dict__.get("__doc__")
    if own:
        return " ".join(own.strip().split("\n\n")[0].split())
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", error.__name__).lower()
    return words[0].upper() + words[1:] + "."


Declared = type[CatHouseError] | tuple[type[CatHouseError], str]


def problems(*errors: Declared) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may raise ``errors``: each status once, described by every
    error that answers it. ``(Conflict, "why")`` describes a generic error raised with a message."""
    found: dict[int, list[str]] = {}
    for declared in errors:
        error, text = declared if isinstance(declared, tuple) else (declared, _described(declared))
        found.setdefault(error.status, []).append(text)
    return {status: {"description": " ".join(dict.fromkeys(texts))} for status, texts in sorted(found.items())}


_UNAUTHORIZED = "No valid access token (missing, expired, revoked, or its account is disabled)."
_UNAUTHORIZED_OPTIONAL = "The access token sent is not valid (expired, revoked, or its account is disabled)."
_VALIDATION = "The request is not valid: the problem's `errors` name each field and what is wrong with it."
_ROLES: Mapping[Callable[..., Any], str] = {
    developer_principal: "Only developers may do this.",
    admin_principal: "Only admins may do this.",
}


def _calls(dependant: Dependant) -> Iterable[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _declare_auth(schema: dict[str, Any], routes: Sequence[Any]) -> None:
    """401 where a token is needed or may be sent; 403 where a role is; 422's own words."""
    paths = schema.get("paths", {})
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        roles = [text for call, text in _ROLES.items() if call in set(_calls(route.dependant))]
        for method in context.methods or ():
            operation = paths.get(context.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            security = operation.get("security")
            if security:
                optional = security == [{OPTIONAL_BEARER: []}]
                responses.setdefault("401", {"description": _UNAUTHORIZED_OPTIONAL if optional else _UNAUTHORIZED})
            if roles:
                found = responses.setdefault("403", {"description": roles[0]})
                if roles[0] not in found["description"]:
                    found["description"] = f"{roles[0]} {found['description']}"
            if "422" in responses:
                text = responses["422"].get("description", "")
                responses["422"]["description"] = f"{_VALIDATION} {text}" if text != "Validation Error" else _VALIDATION


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


def _nulls_in_examples(components: dict[str, Any]) -> None:
    """FastAPI drops every null from the document (``exclude_none``), those of examples too: a
    required field whose example value is null comes back, so the example stays valid."""
    for schema in components.values():
        properties, required = schema.get("properties", {}), schema.get("required", [])
        for example in schema.get("examples", []):
            if not isinstance(example, dict):
                continue
            for name in required:
                if name not in example and {"type": "null"} in properties.get(name, {}).get("anyOf", []):
                    example[name] = None


def _declare_schemes(schema: dict[str, Any], known: Mapping[str, Mapping[str, Any]]) -> None:
    """Every security scheme an operation names, in the components."""
    named = {
        name
        for methods in schema.get("paths", {}).values()
        for operation in methods.values()
        for requirement in operation.get("security", [])
        for name in requirement
    }
    declared = schema["components"].setdefault("securitySchemes", {})
    for name in sorted(named - set(declared)):
        declared[name] = dict(known[name])


def install_openapi(
    app: FastAPI,
    *,
    tags: Sequence[Mapping[str, str]] = (),
    security_schemes: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Publish ``app.openapi()``: ``tags`` in order, with their descriptions; ``security_schemes``
    besides the bearer token, for the operations that name them (``openapi_extra``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=[dict(tag) for tag in tags] or None,
        )
        _declare_auth(schema, app.routes)
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
                # In status order, as a reader looks them up; `default` last.
                operation["responses"] = dict(
                    sorted(responses.items(), key=lambda item: (item[0] == "default", item[0]))
                )
        _nulls_in_examples(components)
        _optional_security(schema)
        _parameters_without_null(schema)
        settle_http_urls(schema, allow_http=app.state.settings.catalog.allow_http)
        _declare_schemes(schema, {"HTTPBearer": _BEARER_SCHEME, **(security_schemes or {})})
        # FastAPI's own 422 models are replaced by Problem; drop them when nothing refers to them.
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

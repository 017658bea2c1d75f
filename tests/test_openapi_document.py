"""The published OpenAPI document, read as an SDK generator reads it: names, ids, examples, errors.

Every service's document and the platform's: operation ids are ``tag_action`` and unique, every
tag is described, no two models share a name, every request body has an example and every
example is valid, every error answer is the one ``Problem`` as problem+json while success answers
stay the success model, and where a route needs a token, a role or input, its 401, 403 or 422 is
declared. (tests/test_generated_client.py generates a client from the live document and uses it.)
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import jsonschema_rs
import pytest

from cathouse.platform.problems import PROBLEM_JSON
from cathouse.platform.settings import Environment, Settings
from cathouse.services import SERVICES, create_platform_app, create_service_app

APPS = [*SERVICES, "platform"]
PROBLEM = {"$ref": "#/components/schemas/Problem"}
# Raw image uploads: their bytes are the body; no example a document can hold says more than the
# description ("PNG, JPEG or WebP").
IMAGE_UPLOADS = {"assets_put_icon", "assets_add_screenshot"}


@cache
def document(name: str) -> dict[str, Any]:
    settings = Settings(_env_file=None, env=Environment.TEST)
    app = create_platform_app(settings) if name == "platform" else create_service_app(name, settings)
    # Through JSON, as a client receives it.
    found: dict[str, Any] = json.loads(json.dumps(app.openapi()))
    return found


def operations(name: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, methods in document(name)["paths"].items()
        for method, op in methods.items()
    ]


def resolved(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema a body refers to, through ``anyOf: [model, null]`` (an optional body)."""
    branches = [branch for branch in schema.get("anyOf", []) if branch != {"type": "null"}]
    if len(branches) == 1:
        schema = branches[0]
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def valid(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    """What is wrong with ``value`` as ``schema`` says, with the document's components to refer to."""
    validator = jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]})
    return [error.message for error in validator.iter_errors(value)]


@pytest.mark.parametrize("name", APPS)
def test_operation_ids_are_tag_action_and_unique(name: str) -> None:
    ids = [op["operationId"] for _, _, op in operations(name)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for method, path, op in operations(name):
        tag = re.sub(r"\W+", "_", op["tags"][0]).lower()
        assert re.fullmatch(rf"{tag}_[a-z][a-z0-9_]*", op["operationId"]), (method, path, op["operationId"])
    if name == "platform":
        assert {"auth_register", "auth_login", "cats_search", "installations_list", "installations_create"} <= set(ids)
        assert {"api_keys_create", "proxy_call_get", "proxy_call_post", "activity_my_feed"} <= set(ids)


@pytest.mark.parametrize("name", APPS)
def test_every_tag_is_declared_with_a_description(name: str) -> None:
    spec = document(name)
    declared = {tag["name"]: tag.get("description", "") for tag in spec["tags"]}
    used = {op["tags"][0] for _, _, op in operations(name)}
    assert used <= set(declared), used - set(declared)
    assert all(declared[tag] for tag in used), declared


@pytest.mark.parametrize("name", APPS)
def test_no_two_models_share_a_name(name: str) -> None:
    components = document(name)["components"]["schemas"]
    # FastAPI spells a model's name with its module when two share it: generators drop both.
    assert not [key for key in components if "__" in key]
    titles = [schema.get("title", key) for key, schema in components.items()]
    assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)


@pytest.mark.parametrize("name", APPS)
def test_every_request_body_has_an_example_and_every_example_is_valid(name: str) -> None:
    spec = document(name)
    for method, path, op in operations(name):
        content = op.get("requestBody", {}).get("content", {})
        if not content or op["operationId"] in IMAGE_UPLOADS:
            continue
        for media_type, body in content.items():
            schema = resolved(spec, body.get("schema", {}))
            examples = [body["example"]] if "example" in body else []
            examples += [e["value"] for e in body.get("examples", {}).values()]
            examples += schema.get("examples", [])
            assert examples, f"{method} {path} ({media_type}) has no example"
            if media_type.endswith("json"):
                for example in examples:
                    assert not valid(spec, body["schema"], example), (method, path, example)
    for key, schema in spec["components"]["schemas"].items():
        for example in schema.get("examples", []):
            assert not valid(spec, {"$ref": f"#/components/schemas/{key}"}, example), (key, example)


@pytest.mark.parametrize("name", APPS)
def test_errors_are_problems_and_success_stays_the_success_model(name: str) -> None:
    for method, path, op in operations(name):
        for status, response in op["responses"].items():
            content = response.get("content", {})
            if status[0] in "45" or status == "default":
                assert content == {PROBLEM_JSON: {"schema": PROBLEM}}, (method, path, status)
            elif "application/json" in content:
                assert content["application/json"]["schema"] != PROBLEM, (method, path, status)
        # A redirect is the success of a route that sends the browser elsewhere (to an OAuth provider).
        assert any(s.startswith(("2", "3")) for s in op["responses"]), (method, path)


@pytest.mark.parametrize("name", APPS)
def test_a_route_that_needs_a_token_or_takes_input_says_how_it_refuses(name: str) -> None:
    for method, path, op in operations(name):
        responses = op["responses"]
        if op.get("security"):
            assert "401" in responses, (method, path)
        if op.get("requestBody") or any(p["in"] in ("path", "query") for p in op.get("parameters", [])):
            assert "422" in responses, (method, path)


@pytest.mark.parametrize("name", APPS)
def test_every_body_has_a_schema_a_generator_can_type(name: str) -> None:
    """JSON with a schema of ``{}`` becomes ``isinstance(body, Any)`` in openapi-python-client's code
    (an error when called), and text parsed as a model: JSON says what it is, text is a string."""
    for method, path, op in operations(name):
        bodies = [("request", op.get("requestBody", {}).get("content", {}))]
        bodies += [(status, r.get("content", {})) for status, r in op["responses"].items()]
        for where, content in bodies:
            for media_type, body in content.items():
                assert "schema" in body, (method, path, where, media_type)
                if media_type == "application/json":
                    assert body["schema"] != {}, (method, path, where)
                if media_type.startswith("text/"):
                    assert body["schema"].get("type") == "string", (method, path, where)


def test_routes_declare_what_their_domain_errors_and_roles_answer() -> None:
    spec = document("platform")
    statuses = {op["operationId"]: set(op["responses"]) for _, _, op in operations("platform")}
    assert {"409", "429", "503"} <= statuses["auth_register"]  # EmailTaken, RateLimited, LimiterUnavailable
    assert {"404", "409"} <= statuses["installations_create"]  # NoSuchCat, NameTaken
    assert {"403", "409"} <= statuses["cats_create"]  # developers only; SlugTaken
    assert {"403", "404", "409"} <= statuses["reviews_create"]  # own cat, no cat, reviewed already
    assert {"413", "415"} <= statuses["assets_put_icon"]
    assert "403" in statuses["users_list"]  # admins only
    assert "403" not in statuses["installations_list"]  # anyone signed in
    described = spec["paths"]["/api/v1/cats/{slug}/versions"]["post"]["responses"]
    assert described["404"]["description"].startswith("There is no such cat")
    assert "Only developers may do this." in described["403"]["description"]


def test_the_proxy_says_how_to_authenticate_and_that_it_carries_any_content() -> None:
    spec = document("proxy")
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    # The gateway reads an installation API key from the same header, as a bearer token.
    assert schemes["InstallationApiKey"] == {**schemes["InstallationApiKey"], "type": "http", "scheme": "bearer"}
    calls = spec["paths"]["/api/v1/proxy/{installation_id}/{path}"]
    for method, op in calls.items():
        assert op["security"] == [{"HTTPBearer": []}, {"InstallationApiKey": []}]
        assert "*/*" in op["responses"]["200"]["content"]
        assert ("requestBody" in op) == (method in ("post", "put", "patch")), method
        if "requestBody" in op:
            assert "*/*" in op["requestBody"]["content"]

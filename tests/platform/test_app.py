"""The app factory as a client sees it: problem+json errors, request ids, metrics, docs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Header, Request
from pydantic import BaseModel, Field, HttpUrl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.app import create_app
from cathouse.platform.db import schema_metadata
from cathouse.platform.errors import Conflict
from cathouse.platform.schemas import HttpsUrl
from cathouse.platform.security import CurrentUser, OptionalUser
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings

router = APIRouter(prefix="/api/v1/widgets")


class WidgetIn(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    size: int = Field(ge=1)
    manual: Annotated[HttpUrl, HttpsUrl(http_in_development=True)] | None = None


@router.post("", status_code=201)
async def create_widget(widget: WidgetIn) -> WidgetIn:
    if widget.name == "taken":
        raise Conflict("A widget named 'taken' exists already.", name=widget.name)
    return widget


@router.get("/count")
async def count(request: Request) -> int:
    async with request.app.state.sessionmakers["catalog"]() as session:
        return int(await session.scalar(text("SELECT 1")) or 0)


@router.get("/echo")
async def echo(request: Request, word: str) -> str:
    async with request.app.state.sessionmakers["catalog"]() as session:
        return str(await session.scalar(text("SELECT CAST(:word AS text)"), {"word": word}))


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internal detail: password=hunter2")


@router.get("/mine")
async def my_widgets(user: CurrentUser) -> list[str]:
    return []


@router.get("/shown")
async def shown_widgets(user: OptionalUser) -> list[str]:
    return ["signed in" if user else "anonymous"]


@router.get("/find")
async def find_widgets(name: str | None = None, after: Annotated[str | None, Header()] = None) -> list[str]:
    return [name or "", after or ""]


@router.get("/{widget_id}")
async def one_widget(widget_id: int) -> int:
    return widget_id


@router.patch("/{widget_id}")
async def change_widget(widget_id: int) -> int:
    return widget_id


WIDGETS = Service(
    name="catalog",
    metadata=schema_metadata("catalog"),
    migrations=Path("."),
    routers=[router],
)

OpenClient = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def client(settings: Settings, app_client: OpenClient) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app([WIDGETS], settings=settings)) as client:
        yield client


async def test_a_request_that_waits_too_long_for_a_connection_is_told_to_come_back(
    make_settings: Callable[..., Settings], database_url: str, app_client: OpenClient
) -> None:
    settings = make_settings(database_url, catalog={"pool_size": 1}, pool_timeout=0.2)
    app = create_app([WIDGETS], settings=settings)
    async with app_client(app) as client:
        assert (await client.get("/api/v1/widgets/count")).json() == 1
        engine: AsyncEngine = app.state.engines["catalog"]
        async with engine.connect():  # the pool's one connection, held
            response = await client.get("/api/v1/widgets/count")
        body = assert_problem(response, 503)
        assert response.headers["retry-after"] == "1"
        assert body["detail"] == "The service is busy; try again in a moment."
        assert (await client.get("/api/v1/widgets/count")).json() == 1


async def test_text_the_database_cannot_store_is_the_clients_422_not_a_500(client: httpx.AsyncClient) -> None:
    # A NUL that no schema stopped reaches PostgreSQL, which refuses it: the caller hears why.
    assert (await client.get("/api/v1/widgets/echo", params={"word": "cat"})).json() == "cat"
    body = assert_problem(await client.get("/api/v1/widgets/echo", params={"word": "c\x00at"}), 422)
    assert "cannot be stored" in str(body["detail"])
    assert (await client.get("/api/v1/widgets/echo", params={"word": "cat"})).json() == "cat"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_payload_errors_are_422_naming_each_failing_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/widgets", json={"name": "", "size": 0})
    body = assert_problem(response, 422)
    assert {e["loc"] for e in body["errors"]} == {"body.name", "body.size"}  # type: ignore[attr-defined]
    assert "body.name" in str(body["detail"])


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/widgets", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(response, 422)


async def test_domain_errors_carry_their_status_and_detail(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/widgets", json={"name": "taken", "size": 1})
    body = assert_problem(response, 409)
    assert body["title"] == "Conflict"
    assert body["detail"] == "A widget named 'taken' exists already."
    assert body["name"] == "taken"
    assert body["instance"] == "/api/v1/widgets"


async def test_unknown_paths_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/nothing-here"), 404)
    body = assert_problem(await client.delete("/api/v1/widgets"), 405)
    assert "DELETE" in str(body["detail"])


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "PUT", "BREW"])
async def test_a_method_a_path_lacks_is_405_allowing_all_it_has(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/api/v1/widgets/7")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, PATCH"
    collection = await client.request(method, "/api/v1/widgets")
    assert_problem(collection, 405)
    assert collection.headers["allow"] == "POST"


async def test_a_literal_path_is_its_own_resource_not_a_value_of_a_parameter(client: httpx.AsyncClient) -> None:
    # /mine matches /{widget_id} in shape, but it is a resource of its own, which has no PATCH.
    response = await client.patch("/api/v1/widgets/mine")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET"
    assert (await client.patch("/api/v1/widgets/7")).json() == 7
    assert_problem(await client.patch("/api/v1/widgets/seven"), 422)  # a bad value where a path has one
    assert_problem(await client.request("TRACE", "/api/v1/widgets/7/parts"), 404)


async def test_unexpected_errors_are_500_with_the_request_id_and_no_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/widgets/boom", headers={"X-Request-ID": "trace-me-123"})
    body = assert_problem(response, 500)
    assert body["request_id"] == "trace-me-123"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/api/v1/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/api/v1/health")
    assert len(generated.headers["x-request-id"]) == 32
    # A header that could smuggle content into logs is replaced rather than echoed.
    hostile = await client.get("/api/v1/health", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"] != "x" * 500


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/widgets", json={"name": "a", "size": 1})
    text = (await client.get("/metrics")).text
    assert 'route="/api/v1/widgets"' in text
    assert 'status="201"' in text
    assert "cathouse_http_request_duration_seconds_bucket" in text


async def test_openapi_and_docs_are_served_and_errors_are_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    operation = spec["paths"]["/api/v1/widgets"]["post"]
    assert "application/problem+json" in operation["responses"]["422"]["content"]
    assert "application/problem+json" in operation["responses"]["default"]["content"]
    assert "Problem" in spec["components"]["schemas"]
    docs = await client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_openapi_parameters_are_left_out_rather_than_sent_as_null(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    schemas = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/widgets/find"]["get"]["parameters"]}
    assert schemas["name"]["type"] == schemas["after"]["type"] == "string"
    assert not {"anyOf", "default"} & set(schemas["name"])
    assert (await client.get("/api/v1/widgets/find")).json() == ["", ""]


@pytest.mark.parametrize(
    ("allow_http", "pattern"), [(False, "^[Hh][Tt][Tt][Pp][Ss]://"), (True, "^[Hh][Tt][Tt][Pp][Ss]?://")]
)
def test_openapi_says_whether_plain_http_urls_are_taken(settings: Settings, allow_http: bool, pattern: str) -> None:
    catalog = settings.catalog.model_copy(update={"allow_http": allow_http})
    app = create_app([WIDGETS], settings=settings.model_copy(update={"catalog": catalog}))
    (manual, _) = app.openapi()["components"]["schemas"]["WidgetIn"]["properties"]["manual"]["anyOf"]
    assert manual["pattern"] == pattern
    assert not [key for key in manual if key.startswith("x-")]


async def test_openapi_says_where_a_token_is_optional_and_where_it_is_required(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert spec["paths"]["/api/v1/widgets/mine"]["get"]["security"] == [{"HTTPBearer": []}]
    assert spec["paths"]["/api/v1/widgets/shown"]["get"]["security"] == [{"HTTPBearer": []}, {}]
    assert list(spec["components"]["securitySchemes"]) == ["HTTPBearer"]
    # And the endpoints behave as published.
    assert (await client.get("/api/v1/widgets/shown")).json() == ["anonymous"]
    assert_problem(await client.get("/api/v1/widgets/shown", headers={"Authorization": "Bearer nonsense"}), 401)
    assert_problem(await client.get("/api/v1/widgets/mine"), 401)

"""The OpenAPI document and the docs page: served offline, and off in production unless asked for."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from cathouse.platform.app import create_app
from cathouse.platform.db import schema_metadata
from cathouse.platform.service import Service
from cathouse.platform.settings import Environment, Settings

OpenClient = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]
PLAIN = Service(name="catalog", metadata=schema_metadata("catalog"), migrations=Path("."))
# What a browser loads from a page: scripts, style sheets, icons, and the document Swagger UI fetches.
REFERENCES = re.compile(r"""(?:src|href)="([^"]+)"|url:\s*'([^']+)'""")
CSS_URLS = re.compile(r"url\(\s*['\"]?([^'\")]+)")


@pytest.fixture
async def client(settings: Settings, app_client: OpenClient) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app([PLAIN], settings=settings)) as client:
        yield client


async def test_the_docs_page_and_everything_it_loads_come_from_the_platform(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    references = [a or b for a, b in REFERENCES.findall(page.text)]
    assert len(references) == 4, references  # style sheet, icon, script, OpenAPI document
    assert not re.search(r"https?://", page.text), "the page names another host"
    assert '"validatorUrl": null' in page.text, "the validator badge would send the document's address away"
    for reference in references:
        url = urljoin(str(page.url), reference)
        assert urlsplit(url).netloc == page.url.host, f"{reference} is not served by the platform"
        loaded = await client.get(url)
        assert loaded.status_code == 200, reference
        assert len(loaded.content) > 0
        if reference.endswith(".css"):
            # The style sheet's own images are inline (data: URLs), not fetched from anywhere.
            assert all(u.startswith("data:") for u in CSS_URLS.findall(loaded.text))
    script = await client.get("/api/v1/docs/static/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in script.text
    assert (await client.get("/api/v1/openapi.json")).json()["openapi"].startswith("3.")


async def test_swagger_uis_licence_is_served_and_nothing_else_of_its_package(client: httpx.AsyncClient) -> None:
    licence = await client.get("/api/v1/docs/static/LICENSE")
    assert licence.status_code == 200
    assert "Apache License" in licence.text
    # The package's demo page (which loads the Petstore document from the internet) is not served.
    for name in ("index.html", "swagger-initializer.js", "..%2F__init__.py"):
        assert (await client.get(f"/api/v1/docs/static/{name}")).status_code == 404, name


@pytest.mark.parametrize(
    ("env", "docs", "served"),
    [
        (Environment.PRODUCTION, None, False),
        (Environment.PRODUCTION, True, True),
        (Environment.DEVELOPMENT, None, True),
        (Environment.DEVELOPMENT, False, False),
    ],
)
async def test_docs_and_openapi_are_off_in_production_unless_turned_on(
    settings: Settings, app_client: OpenClient, env: Environment, docs: bool | None, served: bool
) -> None:
    configured = settings.model_copy(update={"env": env, "docs": docs})
    async with app_client(create_app([PLAIN], settings=configured)) as client:
        for path in ("/api/v1/docs", "/api/v1/openapi.json", "/api/v1/docs/static/swagger-ui.css"):
            response = await client.get(path)
            assert response.status_code == (200 if served else 404), path
        assert (await client.get("/api/v1/health")).status_code == 200

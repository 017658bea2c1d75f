"""A Python client generated from the live OpenAPI document, and a user's journey through it.

``cathouse up`` serves the platform; openapi-python-client (what most FastAPI users make their SDK
with) generates a client from its ``/api/v1/openapi.json`` with the project's settings for it
(docs/openapi-python-client.yaml) and must not warn about anything. Then a user, through the
generated client only: registers, signs in, finds a cat, installs it, lists their installations,
makes an API key, and with that key calls the cat (a real HTTP server here) through the proxy;
then reads their activity. Every answer is the generated model a user would handle.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.auth.conftest import signed_up
from tests.catalog.conftest import cat_body
from tests.conftest import truncate_all
from tests.installation.conftest import version
from tests.support import cathouse_env, free_port, serving, start_cathouse, terminate_and_wait, wait_healthy

pytestmark = pytest.mark.e2e

GENERATOR_SETTINGS = Path(__file__).parents[1] / "docs" / "openapi-python-client.yaml"
PACKAGE = "cathouse_client"
SECRET = "sk-live-quokka-5e1d"  # the installation's credential, which the proxy sends the cat


@dataclass
class Cat:
    """The cat's API, a real HTTP server: what it received, and an answer that echoes it."""

    port: int
    received: list[tuple[Request, bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[Cat]:
    cat = Cat(port=free_port())

    async def anything(request: Request) -> JSONResponse:
        cat.received.append((request, await request.body()))
        return JSONResponse({"path": request.url.path, "query": request.url.query})

    app = Starlette(routes=[Route("/{rest:path}", anything, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
    async with serving(app, cat.port):
        yield cat


@pytest.fixture(scope="module")
def platform(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``cathouse up``, allowed to call a cat on loopback over http."""
    data_dir = tmp_path_factory.mktemp("generated-client")
    port = free_port()
    env = cathouse_env(
        data_dir,
        {
            "CATHOUSE_CATALOG__ALLOW_HTTP": "true",
            "CATHOUSE_PROXY__ALLOW_HOSTS": '["127.0.0.0/8"]',
            "CATHOUSE_PROXY__AUDIT_FLUSH_INTERVAL": "0.05",
            "CATHOUSE_EVENTS__POLL_INTERVAL": "0.05",
            "CATHOUSE_AUTH__REGISTER_RATE": "1000/minute",
            "CATHOUSE_AUTH__LOGIN_RATE": "1000/minute",
        },
        database_url=database_url,
    )
    log = data_dir / "up.log"
    proc = start_cathouse(["up", "--port", str(port)], env, log)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/v1/health", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        terminate_and_wait(proc)


@pytest.fixture(scope="module")
def client_package(platform: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client openapi-python-client generates from the live document, imported."""
    root = tmp_path_factory.mktemp("sdk")
    output = root / PACKAGE
    bin_dir = Path(sys.executable).parent
    generated = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            *("generate", "--url", f"{platform}/api/v1/openapi.json", "--meta", "none"),
            *("--output-path", str(output), "--config", str(GENERATOR_SETTINGS)),
        ],
        # Its formatter (ruff) from this environment, as a developer's shell would find it.
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    said = generated.stdout + generated.stderr
    assert generated.returncode == 0, said
    # Anything beyond its one line is a warning: a model, a response or an endpoint left out.
    assert said.split() == ["Generating", str(output)], said
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def sdk(name: str) -> Any:
    """A module of the generated package: ``sdk("api.auth.auth_register")``."""
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture(scope="module")
async def published_cat(platform: str, engine: AsyncEngine, upstream: Cat) -> AsyncIterator[str]:
    """A published cat whose API is ``upstream``: its publisher and an admin, over plain HTTP."""
    try:
        async with httpx.AsyncClient(base_url=platform, timeout=30) as api:
            publisher = await signed_up(api, roles=("developer",), engine=engine)
            admin = await signed_up(api, roles=("admin",), engine=engine)
            slug = f"quokka-{uuid.uuid4().hex[:8]}"
            created = await api.post(
                "/api/v1/cats", json=cat_body(slug, name="Quokka Points"), headers=publisher.headers
            )
            assert created.status_code == 201, created.text
            spec = version(base_url=upstream.url, webhook_url=None)
            added = await api.post(f"/api/v1/cats/{slug}/versions", json=spec, headers=publisher.headers)
            assert added.status_code == 201, added.text
            submitted = await api.post(f"/api/v1/cats/{slug}/submit", headers=publisher.headers)
            assert submitted.status_code == 200, submitted.text
            approved = await api.post(f"/api/v1/cats/{slug}/approve", headers=admin.headers)
            assert approved.status_code == 200, approved.text
            yield slug
    finally:
        await truncate_all(engine)


async def test_a_generated_client_takes_a_user_from_signing_up_to_calling_a_cat(
    client_package: ModuleType, platform: str, published_cat: str, upstream: Cat
) -> None:
    async with AsyncExitStack() as clients:
        await journey(client_package, platform, published_cat, upstream, clients)


async def journey(
    package: ModuleType, platform: str, published_cat: str, upstream: Cat, clients: AsyncExitStack
) -> None:
    models = sdk("models")
    # Each client closes its connections at the end, as `async with` does.
    anonymous = await clients.enter_async_context(package.Client(base_url=platform, raise_on_unexpected_status=True))

    # Register and sign in.
    email = f"quokka-{uuid.uuid4().hex[:8]}@example.com"
    password = "a quokka's own passphrase"
    registered = await sdk("api.auth.auth_register").asyncio_detailed(
        client=anonymous, body=models.RegisterIn(email=email, password=password, display_name="Quinn")
    )
    assert registered.status_code == 201
    assert isinstance(registered.parsed, models.UserOut)
    assert registered.parsed.email == email
    taken = await sdk("api.auth.auth_register").asyncio_detailed(
        client=anonymous, body=models.RegisterIn(email=email, password=password, display_name="Quinn")
    )
    assert taken.status_code == 409
    assert isinstance(taken.parsed, models.Problem)
    assert taken.parsed.detail == "An account with this email exists already."
    tokens = await sdk("api.auth.auth_login").asyncio(
        client=anonymous, body=models.LoginIn(email=email, password=password)
    )
    assert isinstance(tokens, models.TokenPair)
    me = await clients.enter_async_context(package.AuthenticatedClient(base_url=platform, token=tokens.access_token))

    # Find the cat.
    found = await sdk("api.cats.cats_search").asyncio(client=me, q="Quokka")
    assert isinstance(found, models.SearchPage)
    assert published_cat in [cat.slug for cat in found.items]

    # Install it, and wait until it is provisioned.
    created = await sdk("api.installations.installations_create").asyncio_detailed(
        client=me,
        body=models.InstallIn(
            cat=published_cat,
            name="Main",
            permissions=["points:read", "points:write"],
            settings=models.InstallInSettings.from_dict({"team": "blue"}),
            secrets=models.InstallInSecrets.from_dict({"api_key": SECRET}),
        ),
    )
    assert created.status_code == 201
    installation = created.parsed
    assert isinstance(installation, models.InstallationOut)
    assert installation.cat.slug == published_cat
    for _ in range(200):
        installation = await sdk("api.installations.installations_read").asyncio(installation.id, client=me)
        if installation.status == "active":
            break
        await asyncio.sleep(0.05)
    assert installation.status == "active", installation.status_reason

    # It is among theirs.
    page = await sdk("api.installations.installations_list").asyncio(client=me)
    assert isinstance(page, models.InstallationPage)
    assert [(i.id, i.cat.slug, i.status) for i in page.items] == [(installation.id, published_cat, "active")]

    # An API key for their own application, shown once.
    key = await sdk("api.api_keys.api_keys_create").asyncio_detailed(
        installation.id, client=me, body=models.ApiKeyIn(name="billing backend")
    )
    assert key.status_code == 201
    assert isinstance(key.parsed, models.NewApiKey)
    assert key.parsed.key.startswith("chk_")

    # Their application calls the cat with the key: the cat gets the installation's secret.
    application = await clients.enter_async_context(
        package.AuthenticatedClient(base_url=platform, token=key.parsed.key)
    )
    answered = await sdk("api.proxy.proxy_call_post").asyncio_detailed(
        installation.id,
        "awards",
        client=application,
        body=models.ProxyCallPostJsonBody.from_dict({"user": "u_42", "points": 50}),
    )
    assert answered.status_code == 200, answered.content
    assert json.loads(answered.parsed.payload.read()) == {"path": "/v1/awards", "query": ""}
    request, body = upstream.received[-1]
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert json.loads(body) == {"user": "u_42", "points": 50}
    # A permission they did not grant: refused before the cat, as a problem the client parses.
    refused = await sdk("api.proxy.proxy_call_get").asyncio_detailed(installation.id, "export", client=application)
    assert refused.status_code == 403
    assert isinstance(refused.parsed, models.Problem)
    assert "points:export" in (refused.parsed.detail or "")
    assert len(upstream.received) == 1

    # What happened, in their feed.
    types: list[str] = []
    for _ in range(200):
        feed = await sdk("api.activity.activity_my_feed").asyncio(client=me)
        assert isinstance(feed, models.ActivityPage)
        types = [entry.type_ for entry in feed.items]
        if "installation.created" in types:
            break
        await asyncio.sleep(0.05)
    assert "installation.created" in types
    assert all(entry.cat.slug == published_cat for entry in feed.items if entry.type_.startswith("installation."))

"""The pages served alone (``cathouse serve web``): their own health, their files, an API that
cannot be reached, said in words, and each call sent to the service that serves its path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cathouse.platform.settings import Environment, Settings
from cathouse.services import api_owners
from cathouse.web.app import ByPath, create_web_app
from tests.support import free_port, in_process

GATEWAY = Path(__file__).resolve().parents[2] / "deploy" / "traefik" / "dynamic.yml"


def _alone(tmp_path: Path) -> Settings:
    # Nothing listens on the port: the catalog is down.
    return Settings(
        _env_file=None,
        env=Environment.TEST,
        data_dir=tmp_path,
        web={"api_url": f"http://127.0.0.1:{free_port()}"},  # type: ignore[arg-type]
    )


async def test_a_catalog_that_cannot_be_reached_is_said_in_words(tmp_path: Path) -> None:
    async with in_process(create_web_app(_alone(tmp_path))) as client:
        page = await client.get("/", params={"q": "points"})
        assert page.status_code == 503
        assert page.headers["content-type"].startswith("text/html")
        assert "The service cannot be reached right now; try again soon." in page.text
        cat = await client.get("/cats/points-ledger")
        assert cat.status_code == 503
        assert "The service cannot be reached" in cat.text


async def test_the_pages_alone_answer_the_gateways_health_check_and_serve_their_files(tmp_path: Path) -> None:
    async with in_process(create_web_app(_alone(tmp_path))) as client:
        health = await client.get("/api/v1/health")
        assert health.json() == {"status": "ok", "service": "web", "version": health.json()["version"]}
        script = await client.get("/static/htmx.min.js")
        assert script.status_code == 200
        assert "htmx" in script.text[:2000]
        licence = await client.get("/static/htmx.LICENSE")
        assert "Zero-Clause BSD" in licence.text
        stylesheet = await client.get("/static/style.css")
        assert "@media (min-width: 640px)" in stylesheet.text


def test_served_alone_each_call_goes_to_the_service_that_serves_its_path() -> None:
    owners = api_owners()
    assert owners == {
        "/api/v1/auth": "auth",
        "/api/v1/users": "auth",
        "/api/v1/cats": "catalog",
        "/api/v1/installations": "installation",
        "/api/v1/oauth": "installation",
        "/api/v1/proxy": "proxy",
        "/api/v1/activity": "activity",
        "/api/v1/events": "activity",
    }
    ports = {prefix: 8000 + n for n, prefix in enumerate(owners)}
    routing = ByPath({prefix: f"http://127.0.0.1:{port}" for prefix, port in ports.items()})
    assert routing.upstream("/api/v1/users/me").port == ports["/api/v1/users"]
    assert routing.upstream("/api/v1/cats").port == ports["/api/v1/cats"]
    assert routing.upstream("/api/v1/activity/stream").port == ports["/api/v1/activity"]
    assert routing.upstream("/api/v1/oauth/callback").port == ports["/api/v1/oauth"]
    with pytest.raises(LookupError):
        routing.upstream("/api/v1/catsuit")


def test_the_gateway_routes_each_part_of_the_api_to_the_same_service() -> None:
    """One map of paths to services: the gateway's routes (a template only Traefik renders) say
    the same as the services' own routes, which the pages served alone follow."""
    routes = GATEWAY.read_text()
    found = dict(re.findall(r'rule: "PathPrefix\(`(/api/v1/[a-z]+)`\)"\n(?:.*\n)*?\s+service: (\w+)', routes))
    assert found == api_owners()

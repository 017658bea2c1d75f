"""The compose file and the gateway's routes file agree: every address the routes default to
is a container of the compose file serving that service on its port, every container knows
where auth's public keys are, and Traefik's container is handed every variable the routes
file reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cathouse.platform.settings import Settings
from cathouse.services import SERVICES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROUTES = (DEPLOY / "traefik" / "dynamic.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
PORTS = {name: Settings(_env_file=None).service(name).port for name in SERVICES}


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_default_upstream_is_the_compose_container_of_that_service(name: str) -> None:
    found = re.search(rf'env "GATEWAY_{name.upper()}_URLS" \| default "([^"]+)"', ROUTES)
    assert found is not None, f"dynamic.yml names no upstream for {name}"
    assert found.group(1) == f"http://{name}:{PORTS[name]}"
    container = COMPOSE["services"][name]
    assert container["command"] == ["serve", name]
    assert str(PORTS[name]) in container["expose"]
    assert f"127.0.0.1:{PORTS[name]}/api/v1/health/ready" in " ".join(container["healthcheck"]["test"])


def test_forward_auth_defaults_to_the_auth_container() -> None:
    found = re.search(r'env "GATEWAY_FORWARD_AUTH_URL" \| default "([^"]+)"', ROUTES)
    assert found is not None
    assert found.group(1) == f"http://auth:{PORTS['auth']}/api/v1/auth/validate"


@pytest.mark.parametrize("name", [*SERVICES, "relay"])
def test_every_container_fetches_the_keys_from_the_auth_container(name: str) -> None:
    environment = COMPOSE["services"][name]["environment"]
    assert environment["CATHOUSE_TOKENS__JWKS_URL"] == (
        f"http://auth:{PORTS['auth']}/api/v1/auth/.well-known/jwks.json"
    )


def test_traefik_is_handed_every_variable_the_routes_file_reads() -> None:
    read = set(re.findall(r'env "([A-Z_]+)"', ROUTES))
    assert read
    assert read == set(COMPOSE["services"]["traefik"]["environment"])
    mounted = COMPOSE["services"]["traefik"]["volumes"]
    assert "./traefik:/etc/traefik:ro" in mounted


def test_only_the_proxy_is_given_the_audit_signing_key() -> None:
    services = COMPOSE["services"]
    holders = {
        name
        for name, container in services.items()
        if "CATHOUSE_AUDIT__SIGNING_KEY" in (container.get("environment") or {}) or container.get("secrets")
    }
    assert holders == {"proxy"}
    assert services["proxy"]["secrets"] == ["audit_signing_key"]
    assert services["proxy"]["environment"]["CATHOUSE_AUDIT__SIGNING_KEY"] == "/run/secrets/audit_signing_key"
    assert COMPOSE["secrets"]["audit_signing_key"]["file"] == "./secrets/audit-signing.pem"
    assert "secrets/" in (DEPLOY / ".gitignore").read_text().split()

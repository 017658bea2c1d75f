"""Schemathesis over every service's published OpenAPI, against real processes.

Every endpoint a later change adds is fuzzed here too: no 500s, and every response matches
the schema the service publishes for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.services import SERVICES
from tests.conftest import truncate_all
from tests.support import cathouse_env, free_port, start_cathouse, terminate_and_wait, wait_healthy

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def split_platform(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, engine: AsyncEngine
) -> AsyncIterator[dict[str, int]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    ports = {name: free_port() for name in SERVICES}
    extra = {f"CATHOUSE_{name.upper()}__PORT": str(port) for name, port in ports.items()}
    # Let the fuzzer reach the code behind the per-address limits, not just the 429.
    extra |= {"CATHOUSE_AUTH__LOGIN_RATE": "100000/minute", "CATHOUSE_AUTH__REGISTER_RATE": "100000/minute"}
    # The live stream ends by itself after this long, so each fuzzed call of it returns.
    extra |= {"CATHOUSE_ACTIVITY__STREAM_MAX_AGE": "0.2"}
    log = tmp / "split.log"
    proc = start_cathouse(["up", "--split"], cathouse_env(tmp / "data", extra, database_url=database_url), log)
    try:
        for port in ports.values():
            wait_healthy(f"http://127.0.0.1:{port}/api/v1/health", proc, log)
        yield ports
    finally:
        terminate_and_wait(proc)
        await truncate_all(engine)  # whatever the fuzzing registered


@pytest.fixture(scope="module")
async def admin_headers(split_platform: dict[str, int], engine: AsyncEngine) -> dict[str, str]:
    """An admin's bearer token, so the fuzzer gets past authentication into every endpoint."""
    base = f"http://127.0.0.1:{split_platform['auth']}/api/v1/auth"
    account = {"email": "fuzzer@example.com", "password": "a long fuzzing passphrase", "display_name": "Fuzz"}
    async with httpx.AsyncClient() as client:
        created = await client.post(f"{base}/register", json=account)
        assert created.status_code == 201, created.text
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE auth.users SET roles = '{user,admin}' WHERE email = :email"), {"email": account["email"]}
            )
        tokens = await client.post(f"{base}/login", json={k: account[k] for k in ("email", "password")})
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


CHECKS = [response_schema_conformance, status_code_conformance, content_type_conformance]
# A schema cannot say "not a common password", so schema-valid data may rightly be refused.
EXCLUDED = [positive_data_acceptance]


@pytest.mark.parametrize("service", list(SERVICES))
def test_no_server_errors_and_responses_match_the_schema(
    split_platform: dict[str, int], admin_headers: dict[str, str], service: str
) -> None:
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{split_platform[service]}/api/v1/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"{service} publishes an invalid operation: {result.err()}"
        operations.append(result.ok())
    assert operations, f"{service} publishes no operations"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=admin_headers, additional_checks=CHECKS, excluded_checks=EXCLUDED)

        fuzz()


def test_every_service_publishes_its_openapi(split_platform: dict[str, int]) -> None:
    for name, port in split_platform.items():
        spec = httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        assert "/api/v1/health" in spec["paths"], name

"""Schemathesis over every service's published OpenAPI, against real processes.

Every check schemathesis has (``st run --checks all``: no 500s, responses as documented, what
the schema allows accepted and what it forbids refused, 405 with a true ``Allow`` for methods a
path lacks, declared security enforced, the stateful ones) in every phase (examples, coverage,
fuzzing, stateful), once as a plain user and once as an admin. Every endpoint a later change adds
is fuzzed here too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.core.result import Ok
from schemathesis.engine import Status, events, from_schema
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.openapi import UNPUBLISHED, served_paths
from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_platform_app, create_service_app
from tests.conftest import truncate_all
from tests.support import cathouse_env, free_port, start_cathouse, terminate_and_wait, wait_healthy

pytestmark = pytest.mark.e2e

# Examples per operation and phase: enough to reach every branch the schema describes, few enough
# that the whole run (5 services, 2 identities) stays near two minutes.
MAX_EXAMPLES = 10

# Refusals of schema-valid input that no schema can say, each where it happens and why. A 422
# naming only these is accepted; any other refusal of valid input fails positive_data_acceptance.
UNSAYABLE = {
    # Opaque on purpose: only the server knows which strings are cursors it gave out.
    "query.cursor": "a cursor from a previous page",
    # NIST SP 800-63B's blocklist of leaked passwords and the account's own name or email.
    "body.password": "not a common password",
    "body.new_password": "not a common password",
    # Categories are rows an admin adds at run time, not an enum of the schema.
    "body.category": "an existing category",
}


@schemathesis.check
def valid_input_accepted_unless_unsayable(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except a 422 that blames only what ``UNSAYABLE`` lists."""
    if response.status_code == 422:
        try:
            errors = json.loads(response.content).get("errors") or []
        except ValueError:
            errors = []
        if errors and all(e.get("loc") in UNSAYABLE for e in errors):
            return None
    result: bool | None = positive_data_acceptance(ctx, response, case)
    return result


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
async def tokens(split_platform: dict[str, int], engine: AsyncEngine) -> dict[str, str]:
    """A plain user's and an admin's access tokens, so the fuzzer gets past authentication."""
    base = f"http://127.0.0.1:{split_platform['auth']}/api/v1/auth"
    found = {}
    async with httpx.AsyncClient() as client:
        for who in ("user", "admin"):
            account = {"email": f"fuzzing-{who}@example.com", "password": "a long fuzzing passphrase"}
            created = await client.post(f"{base}/register", json={**account, "display_name": who})
            assert created.status_code == 201, created.text
            if who == "admin":
                async with engine.begin() as conn:
                    await conn.execute(
                        text("UPDATE auth.users SET roles = '{user,admin}' WHERE email = :email"),
                        {"email": account["email"]},
                    )
            signed_in = await client.post(f"{base}/login", json=account)
            found[who] = signed_in.json()["access_token"]
    return found


def _failures(url: str, token: str) -> list[str]:
    config = schemathesis.Config()
    project = config.projects.override
    project.update(headers={"Authorization": f"Bearer {token}"}, workers=1)
    project.checks.update(included_check_names=["all"], excluded_check_names=["positive_data_acceptance"])
    project.generation.update(max_examples=MAX_EXAMPLES)
    schema = schemathesis.openapi.from_url(url, config=config)
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"an invalid operation is published: {result.err()}"
    found: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.status == Status.FAILURE:
            for case_id, checks in event.recorder.checks.items():
                case = event.recorder.cases[case_id].value
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        found.append(f"{event.label}: {failure.title}: {failure.message}\n  {case.method} {case.path}")
        elif isinstance(event, events.NonFatalError):
            found.append(f"{event.label}: error: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            found.append(f"fatal: {event.exception!r}")
    return found


@pytest.mark.parametrize("who", ["user", "admin"])
@pytest.mark.parametrize("service", list(SERVICES))
def test_every_check_passes(split_platform: dict[str, int], tokens: dict[str, str], service: str, who: str) -> None:
    failures = _failures(f"http://127.0.0.1:{split_platform[service]}/api/v1/openapi.json", tokens[who])
    assert not failures, "\n\n".join(dict.fromkeys(failures))


def test_every_service_publishes_its_openapi(split_platform: dict[str, int]) -> None:
    for name, port in split_platform.items():
        spec = httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        assert "/api/v1/health" in spec["paths"], name


@pytest.mark.parametrize("service", [*SERVICES, "platform"])
def test_every_served_route_is_published_or_listed_as_unpublished(settings: Settings, service: str) -> None:
    app = create_platform_app(settings) if service == "platform" else create_service_app(service, settings)
    assert served_paths(app) - UNPUBLISHED == set(app.openapi()["paths"])

"""Schemathesis over every service's published OpenAPI, against real processes.

Every check schemathesis has (``st run --checks all``: no 500s, responses as documented, what
the schema allows accepted and what it forbids refused, 405 with a true ``Allow`` for methods a
path lacks, declared security enforced, the stateful ones) in every phase (examples, coverage,
fuzzing, stateful), once as a plain user and once as an admin. Every endpoint a later change adds
is fuzzed here too. The cases are the same on every run (a fixed seed, derandomised), so a
failure seen once is seen again; it names the request sent and the response received.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute
from schemathesis.core.result import Ok
from schemathesis.engine import Status, events, from_schema
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.openapi import UNPUBLISHED, served_paths
from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_platform_app, create_service_app
from cathouse.web.app import ROUTERS as WEB_ROUTERS
from tests.conftest import truncate_all
from tests.support import cathouse_env, free_ports, start_cathouse, terminate_and_wait, wait_healthy

pytestmark = pytest.mark.e2e

# Examples per operation in the fuzzing phase (the coverage phase derives its own from each
# schema's boundaries): few, so that the ten runs (5 services, 2 identities) take about two minutes.
MAX_EXAMPLES = 5
# Runs at a time, each in a process of its own (see `fuzzed`): the machine's two cores.
PROCESSES = 2
# Steps of each stateful scenario (links between operations: create, then read, change, delete).
STATEFUL_STEPS = 4
SEED = 20260107

# Refusals of schema-valid input that no schema can say, each where it happens and why: a field
# (``loc`` as the problem names it) anywhere, or in one operation (``METHOD /path loc``). A 422
# naming only these is accepted; any other refusal of valid input fails positive_data_acceptance.
UNSAYABLE = {
    # Opaque on purpose: only the server knows which strings are cursors it gave out.
    "query.cursor": "a cursor from a previous page",
    # NIST SP 800-63B's blocklist of leaked passwords and the account's own name or email.
    "body.password": "not a common password",
    "body.new_password": "not a common password",
    # Categories are rows an admin adds at run time, not an enum of the schema.
    "body.category": "an existing category",
    # The draft 2020-12 meta-schema is not restated in ours; the local-$ref rule and size neither.
    "body.settings_schema": "a valid JSON Schema with local $refs only",
    # Rules across fields: credentials name writeOnly settings, endpoints declared permissions.
    "POST /api/v1/cats/{slug}/versions body": "a version consistent across its fields",
    # An admin acting on another person's installation gives a reason; on their own, none is needed.
    # Which installation is whose is data: the admin runs meet the user runs' installations.
    "POST /api/v1/installations/{installation_id}/suspend body.reason": "a reason, from an admin not the owner",
    "POST /api/v1/installations/{installation_id}/resume body.reason": "a reason, from an admin not the owner",
    "DELETE /api/v1/installations/{installation_id} query.reason": "a reason, from an admin not the owner",
    # Whether bytes are a PNG, JPEG or WebP image (415), and its dimensions and stillness (422), are
    # in the bytes, which a schema cannot read.
    "PUT /api/v1/cats/{slug}/icon body": "a still image between 64x64 and 1024x1024 pixels",
    "POST /api/v1/cats/{slug}/screenshots body": "a still image between 320x200 and 3840x2160 pixels",
    # Which URLs an OAuth 2.0 declaration needs depends on its grant (an if/then the schema leaves out).
    "POST /api/v1/cats/{slug}/versions body.credentials.oauth2": "the URLs its grant needs",
}
# Routes whose every success rests on data only the server has: a refusal of schema-valid input
# with one of these statuses is the route working, not a schema too loose.
REFUSED_BY_DATA = {
    # The state must be one the platform gave out, brought back once by the browser of its owner.
    "GET /api/v1/oauth/callback": {400, 403},
}


def _unsayable(operation: str, loc: object) -> bool:
    return loc in UNSAYABLE or f"{operation} {loc}" in UNSAYABLE


@schemathesis.check
def valid_input_accepted_unless_unsayable(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except a 415 or 422 that blames only what ``UNSAYABLE`` lists."""
    if response.status_code in (415, 422):
        try:
            errors = json.loads(response.content).get("errors") or []
        except ValueError:
            errors = []
        if errors and all(_unsayable(case.operation.label, e.get("loc")) for e in errors):
            return None
    if response.status_code in REFUSED_BY_DATA.get(case.operation.label, ()):
        return None
    result: bool | None = positive_data_acceptance(ctx, response, case)
    return result


@pytest.fixture(scope="module")
async def split_platform(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, engine: AsyncEngine
) -> AsyncIterator[dict[str, int]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    *service_ports, web = free_ports(len(SERVICES) + 1)
    ports = dict(zip(SERVICES, service_ports, strict=True))
    extra = {f"CATHOUSE_{name.upper()}__PORT": str(port) for name, port in ports.items()}
    extra["CATHOUSE_WEB__PORT"] = str(web)  # split starts the pages too, off 8007
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


PASSWORD = "a long fuzzing passphrase"


@pytest.fixture(scope="module")
async def accounts(split_platform: dict[str, int], engine: AsyncEngine) -> dict[tuple[str, str], str]:
    """The email of an account per run: what a run does to its own account (signing out
    everywhere, changing its roles) is no other run's business."""
    base = f"http://127.0.0.1:{split_platform['auth']}/api/v1/auth"
    found = {}
    async with httpx.AsyncClient() as client:
        for service, who in itertools.product(ORDER, IDENTITIES):
            email = f"fuzzing-{service}-{who}@example.com"
            created = await client.post(
                f"{base}/register", json={"email": email, "password": PASSWORD, "display_name": who}
            )
            assert created.status_code == 201, created.text
            if who == "admin":
                async with engine.begin() as conn:
                    await conn.execute(
                        text("UPDATE auth.users SET roles = '{user,admin}' WHERE email = :email"), {"email": email}
                    )
            found[service, who] = email
    return found


def _shown(content: bytes | None, limit: int = 600) -> str:
    if not content:
        return "(empty)"
    text = content.decode("utf-8", "replace")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _headers(headers: dict[str, list[str]]) -> str:
    """What was sent besides the bearer token and what any client sends."""
    common = {"authorization", "user-agent", "accept", "accept-encoding", "connection", "content-length"}
    return json.dumps({k: v if len(v) > 1 else v[0] for k, v in headers.items() if k.lower() not in common})


def _failures(url: str, login_url: str, email: str) -> list[str]:
    config = schemathesis.Config(seed=SEED)
    project = config.projects.override
    project.update(workers=1)
    project.checks.update(included_check_names=["all"], excluded_check_names=["positive_data_acceptance"])
    project.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    project.phases.update(phases=["examples", "coverage", "fuzzing", "stateful"])
    project.phases.stateful.max_steps = STATEFUL_STEPS
    schema = schemathesis.openapi.from_url(url, config=config)

    @schema.auth()
    class SignedIn:
        """The run's account, signed in again after a 401: a call of the run may end its session."""

        def get(self, case: Any, ctx: Any) -> str:
            signed_in = httpx.post(login_url, json={"email": email, "password": PASSWORD})
            signed_in.raise_for_status()
            return str(signed_in.json()["access_token"])

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"an invalid operation is published: {result.err()}"
    found: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.status == Status.FAILURE:
            recorder = event.recorder
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status != Status.FAILURE or check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    interaction = recorder.interactions.get(failure.case_id or case_id)
                    if interaction is None or interaction.response is None:
                        exchange = "  (no response)"
                    else:
                        request, response = interaction.request, interaction.response
                        exchange = (
                            f"  {request.method} {request.uri}\n    headers: {_headers(request.headers)}\n"
                            f"    sent: {_shown(request.body)}\n"
                            f"  {response.status_code}: {_shown(response.content)}"
                        )
                    found.append(f"{event.label} [{event.phase.value}]: {failure.title}: {failure.message}\n{exchange}")
        elif isinstance(event, events.NonFatalError):
            found.append(f"{event.label}: error: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            found.append(f"fatal: {event.exception!r}")
    return found


# Every user run before any admin run, auth last of each: an admin run changes what the others
# see (cats approved, installations suspended), and two runs of one service seldom overlap.
ORDER = [name for name in SERVICES if name != "auth"] + ["auth"]
IDENTITIES = ["user", "admin"]
# Alone, after every other run: it disables and demotes accounts, the other runs' too.
ALONE = ("auth", "admin")


@pytest.fixture(scope="module")
def fuzzed(
    request: pytest.FixtureRequest, split_platform: dict[str, int], accounts: dict[tuple[str, str], str]
) -> Iterator[dict[tuple[str, str], Future[list[str]]]]:
    """The runs the session selected but ALONE, PROCESSES at a time; each test waits for its own."""
    wanted = [
        (str(item.callspec.params["service"]), str(item.callspec.params["who"]))
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_every_check_passes"
    ]
    # Processes, not threads: Python 3.11's ast module is not thread-safe, and the fuzzer compiles patterns.
    with ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield {
            run: pool.submit(_failures, *_run_arguments(split_platform, accounts, run))
            for run in sorted(wanted, key=lambda run: (IDENTITIES.index(run[1]), ORDER.index(run[0])))
            if run != ALONE
        }


def _run_arguments(
    ports: dict[str, int], accounts: dict[tuple[str, str], str], run: tuple[str, str]
) -> tuple[str, str, str]:
    openapi = f"http://127.0.0.1:{ports[run[0]]}/api/v1/openapi.json"
    return openapi, f"http://127.0.0.1:{ports['auth']}/api/v1/auth/login", accounts[run]


@pytest.mark.parametrize("who", IDENTITIES)
@pytest.mark.parametrize("service", ORDER)
def test_every_check_passes(
    fuzzed: dict[tuple[str, str], Future[list[str]]],
    split_platform: dict[str, int],
    accounts: dict[tuple[str, str], str],
    service: str,
    who: str,
) -> None:
    if (service, who) == ALONE:
        wait(fuzzed.values())
        failures = _failures(*_run_arguments(split_platform, accounts, ALONE))
    else:
        failures = fuzzed[service, who].result()
    if failures:
        pytest.fail("\n\n".join(dict.fromkeys(failures)), pytrace=False)


def test_every_service_publishes_its_openapi(split_platform: dict[str, int]) -> None:
    for name, port in split_platform.items():
        spec = httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        assert "/api/v1/health" in spec["paths"], name


@pytest.mark.parametrize("service", [*SERVICES, "platform"])
def test_every_served_route_is_published_or_listed_as_unpublished(settings: Settings, service: str) -> None:
    app = create_platform_app(settings) if service == "platform" else create_service_app(service, settings)
    # The platform also serves the web pages: HTML for people, not the API.
    pages = (
        {r.path for router in WEB_ROUTERS for r in router.routes if isinstance(r, APIRoute)}
        if service == "platform"
        else set()
    )
    assert served_paths(app) - UNPUBLISHED - pages == set(app.openapi()["paths"])

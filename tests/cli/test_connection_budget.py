"""The connection budget, measured: under a mixed load at every service, ``cathouse up --split``
(each service and the relay a process of its own, as the compose file runs them) holds at most
10 connections to PostgreSQL at once and ``cathouse up`` at most 6, at the default pool sizes,
and no request of the load fails.

A sampler on a connection of its own reads ``pg_stat_activity`` every few milliseconds while
users register and log in, search the catalog, install a cat, call its API through the proxy (a
real HTTP server stands in for the cat), read their activity and keep a live stream open, and
the relay carries the events all that makes to the workers and the activity stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cathouse.platform.db import async_url
from cathouse.services import SERVICES
from tests.auth.conftest import Account, login, register, signed_up
from tests.conftest import asyncpg_dsn
from tests.proxy.conftest import SECRET, People, installed
from tests.support import (
    ROUTES,
    Routed,
    cathouse_env,
    free_port,
    free_ports,
    own_database,
    serving,
    start_cathouse,
    terminate_and_wait,
    wait_healthy,
)

pytestmark = pytest.mark.e2e

SPLIT_BUDGET = 10
ONE_PROCESS_BUDGET = 6
LOAD_SECONDS = 5.0
# The load goes on past LOAD_SECONDS until every process has answered this many requests (on a
# busy machine logins, an argon2id hash each, come slowly), but never longer than LOAD_LIMIT.
MIN_EACH = 10
LOAD_LIMIT = 60.0
# The test's own connections (the sampler, granting roles): not the platform's, not counted.
HARNESS = "budget-harness"
COUNTED = "SELECT application_name, count(*) FROM pg_stat_activity"
COUNTED += " WHERE datname = current_database() AND application_name LIKE 'cathouse%'"
COUNTED += " AND pid <> pg_backend_pid() GROUP BY application_name"


@dataclass
class Sampler:
    """Counts the platform's connections to its database, again and again, remembering the most."""

    dsn: str
    samples: int = 0
    peak: int = 0
    at_peak: dict[str, int] = field(default_factory=dict)
    most: dict[str, int] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": f"{HARNESS}-sampler"})
        try:
            while not stop.is_set():
                counts = {name: int(n) for name, n in await conn.fetch(COUNTED)}
                self.samples += 1
                if sum(counts.values()) > self.peak:
                    self.peak, self.at_peak = sum(counts.values()), counts
                for name, n in counts.items():
                    self.most[name] = max(self.most.get(name, 0), n)
                await asyncio.sleep(0.005)
        finally:
            await conn.close()


@dataclass
class Load:
    client: httpx.AsyncClient
    people: People
    slug: str
    installation: str
    key: str
    done: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    installations: list[str] = field(default_factory=list)
    streamed: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def check(self, response: httpx.Response, *expected: int) -> httpx.Response:
        route = next(s for prefix, s in ROUTES.items() if response.request.url.path.startswith(prefix))
        self.done[route] += 1
        if response.status_code not in expected:
            self.failures.append(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:300]}"
            )
        return response

    async def accounts(self) -> None:
        email = f"load-{uuid.uuid4().hex[:10]}@example.com"
        self.check(await register(self.client, email), 201)
        self.check(await login(self.client, email), 200)

    async def searches(self) -> None:
        self.check(await self.client.get("/api/v1/cats", params={"q": "points ledger"}), 200)
        self.check(await self.client.get("/api/v1/cats", params={"category": "points", "sort": "newest"}), 200)
        self.check(await self.client.get(f"/api/v1/cats/{self.slug}"), 200)

    async def installs(self) -> None:
        owner = self.people.owner.headers
        body = {
            "cat": self.slug,
            "name": f"Load {uuid.uuid4().hex[:8]}",
            "permissions": ["points:read", "points:write"],
            "settings": {"team": "red"},
            "secrets": {"api_key": SECRET},
        }
        created = self.check(await self.client.post("/api/v1/installations", json=body, headers=owner), 201)
        if created.status_code == 201:
            self.installations.append(created.json()["id"])
            self.check(await self.client.get(f"/api/v1/installations/{created.json()['id']}", headers=owner), 200)
        self.check(await self.client.get("/api/v1/installations", headers=owner), 200)

    async def calls(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        for n in range(5):
            self.check(await self.client.get(f"/api/v1/proxy/{self.installation}/balances/{n}", headers=headers), 200)

    async def reads(self) -> None:
        owner = self.people.owner.headers
        self.check(await self.client.get("/api/v1/activity"), 200)
        self.check(await self.client.get("/api/v1/activity/me", headers=owner), 200)
        self.check(await self.client.get(f"/api/v1/activity/cats/{self.slug}"), 200)
        self.check(await self.client.get(f"/api/v1/activity/cats/{self.slug}/stats"), 200)
        self.check(await self.client.get("/api/v1/activity/stats"), 200)

    async def stream(self) -> None:
        """A live stream held open through the load: the activity hub LISTENs while it is."""
        headers = self.people.owner.headers
        async with self.client.stream("GET", "/api/v1/activity/stream", headers=headers) as response:
            self.check(response, 200)
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    self.streamed += 1


async def repeat(enough: Callable[[], bool], step: Callable[[], Awaitable[None]]) -> None:
    while not enough():
        await step()


async def drive(load: Load, seconds: float) -> None:
    """Every kind of request at once, several of each, for ``seconds`` and until every process
    has answered MIN_EACH: more callers than any process has connections, so requests wait."""
    started = time.monotonic()

    def enough() -> bool:
        elapsed = time.monotonic() - started
        served = all(load.done[route] >= MIN_EACH for route in set(ROUTES.values()))
        return elapsed >= LOAD_LIMIT or (elapsed >= seconds and served)

    mix = {load.accounts: 2, load.searches: 3, load.installs: 2, load.calls: 4, load.reads: 3}
    await asyncio.gather(*(repeat(enough, step) for step, callers in mix.items() for _ in range(callers)))


@contextlib.asynccontextmanager
async def cat_api() -> AsyncIterator[str]:
    """The cat's API on a loopback port: answers every call."""
    port = free_port()

    async def anything(request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path})

    async with serving(Starlette(routes=[Route("/{rest:path}", anything)]), port):
        yield f"http://127.0.0.1:{port}/v1"


async def prepare(client: httpx.AsyncClient, harness: AsyncEngine, upstream: str) -> Load:
    people = People(
        publisher=await signed_up(client, roles=("developer",), engine=harness),
        admin=await signed_up(client, roles=("admin",), engine=harness),
        owner=await signed_up(client),
        stranger=await signed_up(client),
    )
    installation = await installed(client, people, upstream, rate_limit_per_minute=100_000)
    found = await client.get(f"/api/v1/installations/{installation}", headers=people.owner.headers)
    slug = found.json()["cat"]["slug"]
    created = await client.post(
        f"/api/v1/installations/{installation}/api-keys", json={"name": "load"}, headers=people.owner.headers
    )
    assert created.status_code == 201, created.text
    return Load(client, people, slug, installation, created.json()["key"])


async def all_active(load: Load, owner: Account, within: float = 20.0) -> list[str]:
    """The installations the load made that are not active yet once ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    waiting = list(load.installations)
    while waiting and time.monotonic() < deadline:
        still = []
        for installation in waiting:
            found = await load.client.get(f"/api/v1/installations/{installation}", headers=owner.headers)
            if found.json().get("status") != "active":
                still.append(installation)
        waiting = still
        await asyncio.sleep(0.2)
    return waiting


async def measure(url: str, bases: dict[str, str]) -> tuple[Sampler, Load]:
    harness = create_async_engine(
        async_url(url), poolclass=NullPool, connect_args={"server_settings": {"application_name": HARNESS}}
    )
    sampler, stop = Sampler(asyncpg_dsn(url)), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    try:
        async with (
            cat_api() as upstream,
            httpx.AsyncClient(transport=Routed(bases), base_url="http://platform", timeout=60) as client,
        ):
            started = time.monotonic()
            load = await prepare(client, harness, upstream)
            streaming = asyncio.create_task(load.stream())
            prepared = time.monotonic()
            await drive(load, LOAD_SECONDS)
            driven = time.monotonic()
            late = await all_active(load, load.people.owner)
            assert late == [], f"events did not reach the installation worker: {len(late)} still waiting"
            load.timings = {
                "setup": prepared - started,
                "load": driven - prepared,
                "settle": time.monotonic() - driven,
            }
            streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streaming
    finally:
        stop.set()
        await sampling
        await harness.dispose()
    return sampler, load


def wait_all_healthy(bases: dict[str, str], proc: subprocess.Popen[bytes], log: Path) -> None:
    for base in set(bases.values()):
        wait_healthy(f"{base}/api/v1/health", proc, log)


def report(layout: str, sampler: Sampler, load: Load) -> str:
    return (
        f"{layout}: peak {sampler.peak} connections over {sampler.samples} samples, at the peak {sampler.at_peak}; "
        f"most per name {sampler.most}; requests {dict(load.done)}; stream entries {load.streamed}; "
        f"seconds { ({k: round(v, 1) for k, v in load.timings.items()}) }"
    )


@pytest.mark.parametrize("layout", ["split", "one process"])
async def test_the_platform_stays_within_its_connection_budget_under_a_mixed_load(
    layout: str, server_url: str, tmp_path: Path
) -> None:
    async with own_database(server_url, "cathouse_budget") as url:
        env_extra = {
            "CATHOUSE_CATALOG__ALLOW_HTTP": "true",
            "CATHOUSE_PROXY__ALLOW_HOSTS": '["127.0.0.0/8"]',
            # Rate limits are not what is measured: the load must not meet them.
            "CATHOUSE_AUTH__REGISTER_RATE": "100000/minute",
            "CATHOUSE_AUTH__LOGIN_RATE": "100000/minute",
            "CATHOUSE_PROXY__USER_RATE_PER_MINUTE": "1000000",
        }
        if layout == "split":
            *service_ports, web = free_ports(len(SERVICES) + 1)
            ports = dict(zip(SERVICES, service_ports, strict=True))
            env_extra.update({f"CATHOUSE_{name.upper()}__PORT": str(port) for name, port in ports.items()})
            env_extra["CATHOUSE_WEB__PORT"] = str(web)  # the pages hold no connection
            jwks = f"http://127.0.0.1:{ports['auth']}/api/v1/auth/.well-known/jwks.json"
            env_extra["CATHOUSE_TOKENS__JWKS_URL"] = jwks
            bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            args, budget = ["up", "--split"], SPLIT_BUDGET
        else:
            port = free_port()
            bases = dict.fromkeys(SERVICES, f"http://127.0.0.1:{port}")
            args, budget = ["up", "--port", str(port)], ONE_PROCESS_BUDGET
        log = tmp_path / "cathouse.log"
        proc = start_cathouse(args, cathouse_env(tmp_path / "data", env_extra, database_url=url), log)
        try:
            launched = time.monotonic()
            await asyncio.to_thread(wait_all_healthy, bases, proc, log)
            up = time.monotonic() - launched
            sampler, load = await measure(url, bases)
            load.timings["start"] = up
        finally:
            assert terminate_and_wait(proc) == 0, log.read_text()[-4000:]

    print(report(layout, sampler, load))
    assert load.failures == [], f"{len(load.failures)} requests failed, e.g. {load.failures[:5]}"
    assert sampler.peak <= budget, report(layout, sampler, load)
    # The sampler saw the platform at work: every process's pool, and the LISTEN connections.
    if layout == "split":
        expected = {f"cathouse-{name}" for name in SERVICES} | {"cathouse-relay", "cathouse-relay-listen"}
        expected.add("cathouse-activity-listen")
    else:
        expected = {"cathouse", "cathouse-listen"}
    assert set(sampler.most) == expected, report(layout, sampler, load)
    assert all(load.done[route] >= MIN_EACH for route in set(ROUTES.values())), report(layout, sampler, load)
    assert load.streamed > 0, "the live stream saw none of the load's events"

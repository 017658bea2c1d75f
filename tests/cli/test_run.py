"""``cathouse up`` as a newcomer runs it: a real process, real HTTP, and a clean stop."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.roles import SERVICE_ROLE
from cathouse.platform.security import JwksKeySource, TokenVerifier
from cathouse.services import SERVICES
from tests.conftest import asyncpg_dsn
from tests.support import (
    cathouse_env,
    free_port,
    free_ports,
    postgres_processes,
    process_tree,
    still_running_after,
    terminate_and_wait,
)

pytestmark = pytest.mark.e2e


def embedded_url(data_dir: Path) -> str:
    return f"postgresql://postgres@/cathouse?host={data_dir / 'postgres'}"


async def leave_a_mark(data_dir: Path) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(embedded_url(data_dir)))
    try:
        await conn.execute(
            "INSERT INTO events.outbox (id, aggregate_type, aggregate_id, event_type, schema_version, payload)"
            " VALUES (gen_random_uuid(), 'test', 'mark', 'test.marked', 1, '{}')"
        )
    finally:
        await conn.close()


async def who_the_platform_connects_as(data_dir: Path) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(embedded_url(data_dir)))
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name LIKE 'cathouse-%'"
        )
        return {r["usename"] for r in rows}
    finally:
        await conn.close()


async def marks(data_dir: Path) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(embedded_url(data_dir)))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events.outbox WHERE aggregate_id = 'mark'"))
    finally:
        await conn.close()


async def token_from_auth_verifies_elsewhere(auth_port: int) -> None:
    """What every other service does when split: verify against auth's JWKS over HTTP."""
    base = f"http://127.0.0.1:{auth_port}/api/v1/auth"
    account = {"email": "split@example.com", "password": "a long split passphrase", "display_name": "Split"}
    async with httpx.AsyncClient() as client:
        assert (await client.post(f"{base}/register", json=account)).status_code == 201
        login = await client.post(f"{base}/login", json={k: account[k] for k in ("email", "password")})
        source = JwksKeySource(f"{base}/.well-known/jwks.json", client)
        verifier = TokenVerifier(source, issuer="cathouse", audience="cathouse")
        principal = await verifier.verify(login.json()["access_token"])
    assert principal.roles == {"user"}


def start_up(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``cathouse up`` with its stdout (the banner) and stderr (the logs) in files of their own."""
    stdout = log.with_suffix(".out")
    with stdout.open("wb") as out, log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "cathouse", *args], env=env, stdout=out, stderr=err)
    return proc, stdout


def wait_for_banner(proc: subprocess.Popen[bytes], stdout: Path, log: Path, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # The banner's last line: the table and the docs links above it are written by then.
        if "Press Ctrl-C to stop." in (text := stdout.read_text()):
            assert "Cat House is up" in text
            return text
        if proc.poll() is not None:
            raise AssertionError(f"cathouse exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        time.sleep(0.02)
    raise AssertionError(f"no banner within {timeout}s:\n{log.read_text()[-4000:]}")


def answers_at_once(url: str) -> None:
    """A service the banner announced answers the first request: no retry, no wait."""
    assert httpx.get(url, timeout=5).status_code == 200, url


def run_up(data_dir: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    env = cathouse_env(data_dir, {"CATHOUSE_LOG_LEVEL": "INFO"}, database_url=None)
    proc, stdout = start_up(["up", "--port", str(port)], env, log)
    banner = wait_for_banner(proc, stdout, log)
    answers_at_once(f"http://127.0.0.1:{port}/api/v1/health")
    assert f"http://127.0.0.1:{port}/api/v1/docs" in banner
    # The logs went to stderr, every (whole) line of them JSON, and none to stdout.
    written = log.read_text()
    logs = [json.loads(line) for line in written[: written.rfind("\n") + 1].splitlines()]
    assert "started" in [entry["message"] for entry in logs]
    assert '"level"' not in banner
    return proc


def stop_and_check_nothing_is_left(proc: subprocess.Popen[bytes], data_dir: Path) -> None:
    started = [*process_tree(proc.pid), *postgres_processes(data_dir)]
    assert postgres_processes(data_dir), "the embedded PostgreSQL should be running"
    assert terminate_and_wait(proc) == 0
    assert still_running_after(started) == [], "a process was left running after SIGTERM"


def test_up_runs_every_service_in_one_process_on_embedded_postgres_and_keeps_its_data(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    proc = run_up(data_dir, tmp_path / "first.log", port)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        assert httpx.get(f"{base}/health").json()["service"] == "cathouse"
        ready = httpx.get(f"{base}/health/db")
        assert ready.status_code == 200
        assert set(ready.json()["databases"]) == set(SERVICES)
        assert httpx.get(f"{base}/docs").status_code == 200
        # The web pages at / on the same port, and their script from the platform itself.
        storefront = httpx.get(f"http://127.0.0.1:{port}/")
        assert storefront.status_code == 200
        assert "<h1>Gamification integrations</h1>" in storefront.text
        assert httpx.get(f"http://127.0.0.1:{port}/static/htmx.min.js").status_code == 200
        # Migrated as the server's superuser; serving as a role that cannot change the schema.
        assert asyncio.run(who_the_platform_connects_as(data_dir)) == {SERVICE_ROLE}
        asyncio.run(leave_a_mark(data_dir))
    finally:
        stop_and_check_nothing_is_left(proc, data_dir)

    proc = run_up(data_dir, tmp_path / "second.log", port)
    try:
        assert asyncio.run(marks(data_dir)) == 1, "a second start must reuse the same data"
    finally:
        stop_and_check_nothing_is_left(proc, data_dir)


def test_up_split_serves_each_service_on_its_own_port_and_stops_them_all(
    tmp_path: Path, database_url: str, committed: AsyncEngine
) -> None:
    *service_ports, web = free_ports(len(SERVICES) + 1)
    ports = dict(zip(SERVICES, service_ports, strict=True))
    extra = {f"CATHOUSE_{name.upper()}__PORT": str(port) for name, port in ports.items()}
    extra["CATHOUSE_WEB__PORT"] = str(web)
    env = cathouse_env(tmp_path / "data", extra, database_url=database_url)
    log = tmp_path / "split.log"
    proc, stdout = start_up(["up", "--split"], env, log)
    try:
        banner = wait_for_banner(proc, stdout, log)
        jwks = f"http://127.0.0.1:{ports['auth']}/api/v1/auth/.well-known/jwks.json"
        for name, port in ports.items():
            assert f"http://127.0.0.1:{port}" in banner
            answers_at_once(f"http://127.0.0.1:{port}/api/v1/health")
            # Ready: its database, and the keys of the auth process on its moved port.
            answers_at_once(f"http://127.0.0.1:{port}/api/v1/health/ready")
            health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health").json()
            assert health["service"] == name
            ready = httpx.get(f"http://127.0.0.1:{port}/api/v1/health/ready").json()
            assert ready == {"status": "ok", "databases": {name: "ok"}, "jwks_url": None if name == "auth" else jwks}
        # The web pages on their own port, reading the catalog of this platform on its moved port.
        assert f"http://127.0.0.1:{web}" in banner
        storefront = httpx.get(f"http://127.0.0.1:{web}/")
        assert storefront.status_code == 200
        assert "<h1>Gamification integrations</h1>" in storefront.text
        assert 'role="alert"' not in storefront.text
        signs_up_and_reads_its_activity_through_the_pages(f"http://127.0.0.1:{web}")
        started = process_tree(proc.pid)
        assert len(started) >= 1 + len(SERVICES) + 2, "a process per service, the web pages and the relay"
        asyncio.run(token_from_auth_verifies_elsewhere(ports["auth"]))
    finally:
        code = terminate_and_wait(proc)
    assert code == 0
    assert still_running_after(started) == []


def signs_up_and_reads_its_activity_through_the_pages(web: str) -> None:
    """The pages served alone reach every service they call, each on its own port: auth (signing
    up and in, the profile), activity (your feed), with no gateway in front."""
    with httpx.Client(base_url=web, timeout=10) as browser:
        form = browser.get("/sign-up")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        email = f"split-pages-{uuid.uuid4().hex[:8]}@example.com"
        person = {"email": email, "password": "a long split passphrase", "display_name": "Pat"}
        signed_up = browser.post("/sign-up", data={"csrf_token": token.group(1), **person, "next": "/profile"})
        assert signed_up.status_code == 303, signed_up.text
        profile = browser.get("/profile")
        assert profile.status_code == 200
        assert email in profile.text
        mine = browser.get("/activity/mine")
        assert mine.status_code == 200
        assert "<h1>Your activity</h1>" in mine.text
        assert 'role="alert"' not in mine.text


def test_ctrl_c_stops_the_one_process_platform_too(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    proc = run_up(data_dir, tmp_path / "up.log", port)
    pg = postgres_processes(data_dir)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert still_running_after(pg) == []


@pytest.mark.parametrize("service", ["auth", "proxy"])
def test_serve_refuses_several_workers_that_would_each_count_the_rate_limits_alone(
    service: str, tmp_path: Path
) -> None:
    env = cathouse_env(tmp_path, database_url=None)  # no CATHOUSE_REDIS_URL
    done = subprocess.run(
        [sys.executable, "-m", "cathouse", "serve", service, "--workers", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "CATHOUSE_REDIS_URL" in done.stderr

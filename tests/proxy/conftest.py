"""Fixtures for the proxy's tests: a clean audit log, factories of audit records, a real server
standing in for a cat, and installations of cats through the API."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cathouse.proxy.audit import AuditRecord, AuditWriter
from tests.auth.conftest import Account, signed_up
from tests.catalog.conftest import cat_body
from tests.conftest import truncate_schemas
from tests.installation.conftest import version, wait_for_status
from tests.support import free_port, serving


@pytest.fixture
async def audit_db(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The test database with an empty audit log, emptied again afterwards: writers commit."""
    await truncate_schemas(engine, ["proxy"])
    yield engine
    await truncate_schemas(engine, ["proxy"])


def audit_record(**changes: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "at": datetime.now(UTC),
        "request_id": uuid.uuid4().hex,
        "user_id": uuid.uuid4(),
        "owner_id": uuid.uuid4(),
        "installation_id": uuid.uuid4(),
        "cat_id": uuid.uuid4(),
        "method": "GET",
        "path": "/points?user=42",
        "decision": "allowed",
        "status": 200,
        "upstream_status": 200,
        "latency_ms": 12.3456789,
        "bytes_in": 0,
        "bytes_out": 321,
    }
    fields.update(changes)
    return AuditRecord(**fields)


async def write(engine: AsyncEngine, records: list[AuditRecord]) -> None:
    """Store ``records`` through a writer, as the gateway would, and wait until they are written."""
    writer = AuditWriter(engine, batch_size=50, flush_interval=60)
    for rec in records:
        writer.record(rec)
    await writer.flush()


SECRET = "sk-live-canary-7f3a9c"


@dataclass
class Upstream:
    """The cat's API: records every request it receives; answers by path."""

    port: int
    seen: list[Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    status: int = 200
    redirect_to: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@dataclass
class People:
    publisher: Account
    admin: Account
    owner: Account
    stranger: Account


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[Upstream]:
    cat = Upstream(port=free_port())

    async def anything(request: Request) -> Response:
        cat.seen.append(request)
        cat.bodies.append(await request.body())
        path = request.url.path
        if cat.redirect_to is not None:
            return Response(status_code=302, headers={"location": cat.redirect_to})
        if path.endswith("/big"):
            return StreamingResponse(iter([b"x" * 65536] * 16), media_type="application/octet-stream")
        response = JSONResponse({"path": path, "query": request.url.query}, status_code=cat.status)
        response.set_cookie("session", "cat-cookie")
        response.headers["x-cat"] = "yes"
        return response

    app = Starlette(routes=[Route("/{rest:path}", anything, methods=["GET", "POST", "PUT", "DELETE", "HEAD"])])
    async with serving(app, cat.port):
        yield cat


@pytest.fixture(scope="module")
async def people(platform: httpx.AsyncClient, engine: AsyncEngine) -> People:
    return People(
        publisher=await signed_up(platform, roles=("developer",), engine=engine),
        admin=await signed_up(platform, roles=("admin",), engine=engine),
        owner=await signed_up(platform),
        stranger=await signed_up(platform),
    )


async def installed(api: httpx.AsyncClient, people: People, upstream: Upstream | str, **changes: Any) -> str:
    """An active installation of a cat whose API is ``upstream`` (or a base URL); returns its id."""
    created = await api.post("/api/v1/cats", json=cat_body(), headers=people.publisher.headers)
    slug = created.json()["slug"]
    base_url = upstream if isinstance(upstream, str) else upstream.url
    spec = version(base_url=base_url, webhook_url=None, **changes)
    added = await api.post(f"/api/v1/cats/{slug}/versions", json=spec, headers=people.publisher.headers)
    assert added.status_code == 201, added.text
    await api.post(f"/api/v1/cats/{slug}/submit", headers=people.publisher.headers)
    await api.post(f"/api/v1/cats/{slug}/approve", headers=people.admin.headers)
    body = {
        "cat": slug,
        "name": f"Main {uuid.uuid4().hex[:6]}",
        "permissions": ["points:read", "points:write"],
        "settings": {"team": "blue"},
        "secrets": {"api_key": SECRET},
    }
    response = await api.post("/api/v1/installations", json=body, headers=people.owner.headers)
    assert response.status_code == 201, response.text
    installation_id: str = response.json()["id"]
    await wait_for_status(api, people.owner, installation_id, "active")
    return installation_id


async def audit_rows(engine: AsyncEngine, expected: int) -> list[dict[str, Any]]:
    """The audit log once ``expected`` records are in (the writer flushes every 50 ms)."""
    for _ in range(100):
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT * FROM proxy.audit_log ORDER BY seq"))).mappings().all()
        if len(rows) >= expected:
            return [dict(r) for r in rows]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(rows)} audit records, not {expected}")


REDIS_SERVER = Path("/usr/bin/redis-server")


class PrivateRedis:
    """A throwaway redis-server of this test's own, to kill, pause and bring back."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *options: str) -> None:
        self.process = subprocess.Popen(
            [
                *(str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", *options),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def pause(self, paused: bool) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.kill()


@pytest.fixture
def stopped_redis() -> Iterator[PrivateRedis]:
    if not REDIS_SERVER.exists():
        pytest.skip(f"{REDIS_SERVER} is not installed")
    server = PrivateRedis()
    yield server
    server.stop()


@pytest.fixture
def private_redis(stopped_redis: PrivateRedis) -> PrivateRedis:
    stopped_redis.start()
    return stopped_redis

"""Helpers for tests that start real processes: free ports, waiting, and process trees."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import random
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp

from cathouse.platform.db import async_url
from cathouse.services import api_owners
from cathouse.web.app import ByPath

# One master key for the whole run: every app and process built in it must unseal the same
# signing keys from the shared test database.
RUN_MASTER_KEY = secrets.token_urlsafe(32)


@contextlib.asynccontextmanager
async def own_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A new, empty database on the server of ``server_url``, and its URL; dropped at the end,
    whoever is still connected to it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(async_url(server_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def terminate_connections(engine: AsyncEngine, application_name: str) -> int:
    """End every connection of this database opened under ``application_name``; how many there were."""
    async with engine.connect() as conn:
        ended = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": application_name},
        )
    return int(ended or 0)


# Ports for the servers a test starts are drawn below Linux's ephemeral range (32768-60999 by
# default): a port the kernel hands out for bind(0) is also one it hands out to the next outgoing
# connection (to PostgreSQL, say), which can take it between the test choosing it and the server
# binding it. Drawn at random, two test runs on one machine rarely pick the same one either.
_PORTS = range(20000, 32768)
_PICK = random.SystemRandom()  # untouched by anything that seeds the random module


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on now: each is held until all are chosen."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", _PICK.choice(_PORTS)))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def cathouse_env(data_dir: Path, extra: Mapping[str, str] | None = None, *, database_url: str | None) -> dict[str, str]:
    """A clean environment for a child ``cathouse``: no inherited CATHOUSE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATHOUSE_")}
    env.update(
        {
            "CATHOUSE_DATA_DIR": str(data_dir),
            "CATHOUSE_ENV": "test",
            "CATHOUSE_LOG_LEVEL": "WARNING",
            "CATHOUSE_MASTER_KEY": RUN_MASTER_KEY,
        }
    )
    if database_url is not None:
        env["CATHOUSE_DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


def start_cathouse(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "cathouse", *args], env=dict(env), stdout=out, stderr=out)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"cathouse exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} was not healthy within {timeout}s:\n{log.read_text()[-4000:]}")


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and every descendant, plus the embedded PostgreSQL it started (a daemon)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(str(data_dir) in part for part in cmdline) and any("postgres" in part for part in cmdline):
            found.append(proc)
    return found


def terminate_and_wait(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("cathouse did not stop within its grace period after SIGTERM") from None


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def still_running_after(processes: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    """Give each process ``timeout`` seconds to go, then say which are still there."""
    psutil.wait_procs(processes, timeout=timeout)
    return alive(processes)


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, port: int) -> AsyncIterator[None]:
    """``app`` on a real loopback port for the duration: a cat's API, or anything to call over TCP."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # it could not start (the port was taken): say why
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def in_process(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` with its lifespan (engines, workers, the relay) running around it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@dataclass(frozen=True)
class Certificate:
    pem: bytes  # what a client trusts
    server: ssl.SSLContext  # what a TLS server on loopback answers with


def self_signed(directory: Path, name: str = "cat.test") -> Certificate:
    """A self-signed certificate for ``name``, valid for a day, written into ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "cert.pem").write_bytes(pem)
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return Certificate(pem=pem, server=server)


# Which process serves a path, as the gateway routes them (and the pages served alone).
ROUTES = api_owners()


class Routed(ByPath):
    """Sends each request to the process that serves its path (``bases``: each service's base
    URL), as a gateway would."""

    def __init__(self, bases: dict[str, str]) -> None:
        upstreams = {prefix: bases[service] for prefix, service in ROUTES.items() if service in bases}
        super().__init__(upstreams, httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=200)))

"""The services' database role: it reads and writes the data, and nothing more.

The role is made for this run (role names belong to the whole server, which parallel runs
share) and granted in the run's database by the same code `cathouse migrate` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from cathouse.platform import migrations, roles
from cathouse.platform.db import async_url, create_engine, sessionmaker
from cathouse.platform.settings import Settings
from cathouse.proxy.app import prune_when_allowed
from cathouse.proxy.audit import AuditWriter, prune_expired, verify
from cathouse.services import COMPONENTS, create_service_app
from tests.conftest import asyncpg_dsn
from tests.proxy.conftest import audit_record
from tests.support import cathouse_env, own_database

ALL = list(COMPONENTS.values())


@dataclass(frozen=True)
class ServiceRole:
    name: str
    url: str  # the run's database, as this role


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cathouse", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def role_url(url: str, role: str, password: str) -> str:
    return make_url(url).set(username=role, password=password).render_as_string(hide_password=False)


async def drop_role(server_url: str, role: str) -> None:
    admin = create_async_engine(async_url(server_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f"DROP ROLE IF EXISTS {roles.ident(role)}")
    finally:
        await admin.dispose()


@pytest.fixture(scope="session")
async def service_role(server_url: str, database_url: str, engine: AsyncEngine) -> AsyncIterator[ServiceRole]:
    name, password = f"cathouse_svc_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    async with engine.connect() as conn:
        assert await roles.ensure_role(conn, name, password)
        await conn.commit()
        await roles.apply_grants(conn, name, ALL)
        await conn.commit()
    yield ServiceRole(name, role_url(database_url, name, password))
    async with engine.begin() as conn:  # its grants here, so that the role can go
        await conn.exec_driver_sql(f"DROP OWNED BY {roles.ident(name)}")
    await drop_role(server_url, name)


@pytest.fixture
async def as_service(service_role: ServiceRole, committed: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(service_role.url))
    try:
        yield conn
    finally:
        await conn.close()


async def refused(conn: asyncpg.Connection, statement: str) -> str:
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
        await conn.execute(statement)
    return str(caught.value)


# --- what the role may not do ------------------------------------------------------------------


def role_engine(settings: Settings, role: ServiceRole) -> AsyncEngine:
    return create_engine(settings, application_name="cathouse-tests", pool_size=1, url=role.url)


async def test_the_role_cannot_update_delete_or_truncate_audit_records(
    as_service: asyncpg.Connection, service_role: ServiceRole, committed: AsyncEngine, settings: Settings
) -> None:
    engine = role_engine(settings, service_role)
    try:
        writer = AuditWriter(engine, batch_size=10, flush_interval=60)
        for _ in range(3):
            writer.record(audit_record())
        await writer.flush()
    finally:
        await engine.dispose()
    assert await as_service.fetchval("SELECT count(*) FROM proxy.audit_log") == 3, "written through the writer"
    assert "permission denied for table audit_log" in await refused(as_service, "UPDATE proxy.audit_log SET status = 1")
    assert "permission denied" in await refused(as_service, "DELETE FROM proxy.audit_log")
    assert "permission denied" in await refused(as_service, "TRUNCATE proxy.audit_log")
    # The head moves forward with every batch, but the pruning anchor is the owner's.
    await refused(as_service, "UPDATE proxy.audit_chain SET pruned_through_seq = 0")
    await refused(as_service, "DELETE FROM proxy.audit_chain")
    assert (await verify(committed)).ok
    assert await as_service.fetchval("SELECT count(*) FROM proxy.audit_log") == 3


@pytest.mark.parametrize("schema", [c.schema for c in ALL])
async def test_the_role_cannot_change_the_schema(as_service: asyncpg.Connection, schema: str) -> None:
    await refused(as_service, f"CREATE TABLE {schema}.intruder (id int)")
    await refused(as_service, f"UPDATE {schema}.alembic_version SET version_num = 'x'")


async def test_the_role_owns_nothing_and_may_not_alter_a_table(
    as_service: asyncpg.Connection, service_role: ServiceRole
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="must be owner"):
        await as_service.execute("ALTER TABLE auth.users ADD COLUMN intruder int")
    owned = await as_service.fetchval(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ANY($1) AND pg_get_userbyid(c.relowner) = current_user",
        [c.schema for c in ALL],
    )
    assert owned == 0


async def test_pruning_as_the_role_is_refused_and_as_the_owner_keeps_the_chain(
    service_role: ServiceRole, committed: AsyncEngine, settings: Settings
) -> None:
    engine = role_engine(settings, service_role)
    try:
        writer = AuditWriter(engine, batch_size=10, flush_interval=60)
        old = datetime.now(UTC) - timedelta(days=100)
        for at in (old, old, datetime.now(UTC)):
            writer.record(audit_record(at=at))
        await writer.flush()
        with pytest.raises(DBAPIError, match="permission denied"):
            await prune_expired(sessionmaker(engine), 90)
    finally:
        await engine.dispose()
    assert await prune_expired(sessionmaker(committed), 90) == 2
    assert (await verify(committed)).ok


# --- what it may do ----------------------------------------------------------------------------


async def test_auth_registers_and_signs_in_connected_as_the_role(
    service_role: ServiceRole,
    committed: AsyncEngine,
    app_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    settings: Settings,
) -> None:
    as_role = settings.model_copy(update={"database_url": SecretStr(service_role.url)})
    async with app_client(create_service_app("auth", as_role)) as client:
        account = {"email": "least@example.com", "password": "a long enough passphrase", "display_name": "Least"}
        assert (await client.post("/api/v1/auth/register", json=account)).status_code == 201
        login = await client.post("/api/v1/auth/login", json={k: account[k] for k in ("email", "password")})
        assert login.status_code == 200
        me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
        assert me.json()["email"] == "least@example.com"
        assert (await client.get("/api/v1/health/db")).status_code == 200


async def test_listen_and_notify_work_for_the_role(as_service: asyncpg.Connection) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    await as_service.add_listener("cathouse_roles_test", lambda *args: heard.put_nowait(args[3]))
    await as_service.execute("SELECT pg_notify('cathouse_roles_test', 'hello')")
    assert await asyncio.wait_for(heard.get(), 5) == "hello"


async def test_creating_the_role_is_safe_when_several_do_it_at_once(
    server_url: str, database_url: str, settings: Settings
) -> None:
    name = f"cathouse_race_{uuid.uuid4().hex[:10]}"
    engines = [create_engine(settings, application_name="cathouse-tests", pool_size=1) for _ in range(4)]

    async def create(e: AsyncEngine) -> bool:
        async with e.connect() as conn:
            created = await roles.ensure_role(conn, name)
            await conn.commit()
            return created

    try:
        outcomes = await asyncio.gather(*(create(e) for e in engines))
        assert sorted(outcomes) == [False, False, False, True]
        async with engines[0].connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM pg_roles WHERE rolname = :n"), {"n": name}) == 1
    finally:
        for e in engines:
            await e.dispose()
        await drop_role(server_url, name)


# --- the grants from the command line ----------------------------------------------------------


async def grants_of(conn: asyncpg.Connection, role: str) -> dict[str, bool]:
    checks = {
        "select audit": "has_table_privilege($1, 'proxy.audit_log', 'SELECT')",
        "insert audit": "has_table_privilege($1, 'proxy.audit_log', 'INSERT')",
        "update audit": "has_table_privilege($1, 'proxy.audit_log', 'UPDATE')",
        "delete audit": "has_table_privilege($1, 'proxy.audit_log', 'DELETE')",
        "truncate audit": "has_table_privilege($1, 'proxy.audit_log', 'TRUNCATE')",
        "update users": "has_table_privilege($1, 'auth.users', 'UPDATE')",
        "delete users": "has_table_privilege($1, 'auth.users', 'DELETE')",
        "create in auth": "has_schema_privilege($1, 'auth', 'CREATE')",
        "use outbox sequence": "has_sequence_privilege($1, 'events.outbox_seq_seq', 'USAGE')",
    }
    return {k: bool(await conn.fetchval(f"SELECT {q}", role)) for k, q in checks.items()}


EXPECTED = {
    "select audit": True,
    "insert audit": True,
    "update audit": False,
    "delete audit": False,
    "truncate audit": False,
    "update users": True,
    "delete users": True,
    "create in auth": False,
    "use outbox sequence": True,
}


async def test_grant_sql_prints_what_an_owner_runs_by_hand(server_url: str, settings: Settings, tmp_path: Path) -> None:
    name = f"cathouse_sql_{uuid.uuid4().hex[:10]}"
    done = await asyncio.to_thread(cli, ["db", "grant-sql", "--role", name], cathouse_env(tmp_path, database_url=None))
    assert done.returncode == 0, done.stderr
    assert f'CREATE ROLE "{name}" LOGIN' in done.stdout
    assert f'GRANT SELECT, INSERT ON "proxy"."audit_log" TO "{name}"' in done.stdout
    try:
        # The role's grants go with the database; then the role can go, whatever happened.
        async with own_database(server_url, "cathouse_grants") as url:
            engine = create_engine(settings, application_name="cathouse-tests", pool_size=1, url=url)
            await migrations.upgrade(engine, ALL)
            await engine.dispose()
            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                for _ in range(2):  # idempotent
                    await conn.execute(done.stdout)
                assert await grants_of(conn, name) == EXPECTED
            finally:
                await conn.close()
    finally:
        await drop_role(server_url, name)


async def test_migrate_grants_the_role_named_in_the_services_url(server_url: str, tmp_path: Path) -> None:
    name, password = f"cathouse_mig_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    try:
        async with own_database(server_url, "cathouse_grants") as url:
            env = cathouse_env(
                tmp_path, {"CATHOUSE_MIGRATION_DATABASE_URL": url}, database_url=role_url(url, name, password)
            )
            done = await asyncio.to_thread(cli, ["migrate"], env)
            assert done.returncode == 0, done.stderr
            assert "events" in done.stdout  # the table of what was applied
            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                assert await grants_of(conn, name) == EXPECTED
                tables = await conn.fetchval(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = ANY($1) AND tableowner = $2",
                    [c.schema for c in ALL],
                    name,
                )
                assert tables == 0
            finally:
                await conn.close()
    finally:
        await drop_role(server_url, name)


async def audit_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM proxy.audit_log")) or 0)


async def test_the_proxy_worker_prunes_only_when_its_role_may(
    service_role: ServiceRole, committed: AsyncEngine, settings: Settings
) -> None:
    writer = AuditWriter(committed, batch_size=10, flush_interval=60)
    writer.record(audit_record(at=datetime.now(UTC) - timedelta(days=400)))
    await writer.flush()
    engine = role_engine(settings, service_role)
    try:
        as_role = asyncio.create_task(prune_when_allowed(engine, sessionmaker(engine), settings))
        await asyncio.sleep(1.0)
        assert not as_role.done(), "it waits for the worker to stop rather than fail and restart"
        as_role.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await as_role
    finally:
        await engine.dispose()
    assert await audit_rows(committed) == 1

    as_owner = asyncio.create_task(prune_when_allowed(committed, sessionmaker(committed), settings))
    try:
        for _ in range(100):
            if await audit_rows(committed) == 0:
                break
            await asyncio.sleep(0.05)
        assert await audit_rows(committed) == 0
    finally:
        as_owner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await as_owner

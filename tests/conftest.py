"""The test harness: one real PostgreSQL per run, built by the real migrations.

The server is ``CATHOUSE_DATABASE_URL`` when set (CI sets it) and an embedded one otherwise.
Each run gets a database of its own on it, dropped at the end. A test is isolated either by
a transaction that is rolled back (``session``) or, when it must commit, by truncating every
table afterwards (``committed``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from cathouse.platform import migrations
from cathouse.platform.db import async_url, create_engine
from cathouse.platform.embedded import embedded_database
from cathouse.platform.settings import Environment, Settings
from cathouse.services import COMPONENTS, create_service_app
from tests.support import RUN_MASTER_KEY, own_database


def pytest_configure(config: pytest.Config) -> None:
    """Each run's temporary files under a root of its own, unless ``--basetemp`` names one.

    The embedded PostgreSQL runs as an unprivileged user of its own, so the directories above
    its data directory are opened to it (o+x). pytest's shared root (``pytest-of-<user>``) is
    set back to owner-only whenever another run starts, which locks a running server out of
    its own files (PANIC: could not open pg_control). A root per run is never touched by another.
    """
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        root = Path(tempfile.mkdtemp(prefix="cathouse-tests-"))
        config.option.basetemp = str(root)
        config.add_cleanup(lambda: shutil.rmtree(root, ignore_errors=True))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An admin URL of the PostgreSQL server the run uses."""
    configured = os.environ.get("CATHOUSE_DATABASE_URL")
    if configured:
        yield configured
        return
    with embedded_database(tmp_path_factory.mktemp("embedded")) as url:
        yield url


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh database for this run, migrated to head by the real migrations."""
    async with own_database(server_url, "cathouse_test") as url:
        engine = create_engine(_settings(url), application_name="cathouse-tests", pool_size=1)
        await migrations.upgrade(engine, list(COMPONENTS.values()))
        await engine.dispose()
        yield url


# Per-address limits are tested on their own; elsewhere they would make tests depend on each other.
GENEROUS_RATES = {"login_rate": "100000/minute", "register_rate": "100000/minute"}


RUN_REDIS_PREFIX = f"cathouse-test-{uuid.uuid4().hex[:8]}:activity:"


def _settings(url: str, **overrides: object) -> Settings:
    overrides.setdefault("auth", GENEROUS_RATES)
    overrides.setdefault("master_key", RUN_MASTER_KEY)
    # Tests change the catalog between searches; the facet cache has tests of its own.
    overrides.setdefault("catalog", {"facet_ttl": 0})
    # A shared Redis: this run's read model under keys of its own, never another run's.
    overrides.setdefault("activity", {"redis_prefix": RUN_REDIS_PREFIX})
    return Settings(
        _env_file=None,
        env=Environment.TEST,
        database_url=url,  # type: ignore[arg-type]
        log_json=True,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return _settings(database_url, data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def make_settings(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Settings]:
    """Settings for a test that needs its own: ``make_settings(url, events={"batch_size": 5})``."""

    def make(url: str, **overrides: object) -> Settings:
        overrides.setdefault("data_dir", tmp_path_factory.mktemp("data"))
        return _settings(url, **overrides)

    return make


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, application_name="cathouse-tests", pool_size=5, max_overflow=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            await transaction.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session whose commits are savepoints inside a transaction that is rolled back."""
    async with AsyncSession(bind=connection, join_transaction_mode="create_savepoint") as session:
        yield session


# Reference data the migrations seed: it stays, as it does in a real database.
SEEDED_TABLES = {"catalog.categories"}


async def truncate_all(engine: AsyncEngine) -> None:
    await truncate_schemas(engine, [c.schema for c in COMPONENTS.values()])


async def truncate_schemas(engine: AsyncEngine, schemas: Sequence[str], *, keep: Sequence[str] = ()) -> None:
    """Every table of ``schemas`` empty and its identity restarted, as a fresh migration leaves it.

    Only the tables a test wrote are emptied, by DELETE rather than TRUNCATE: a TRUNCATE makes
    new files for each table and its indexes (half a second for all of them, a third of one for
    a table with its dependants), paid after hundreds of tests that each write a few rows. The
    deletes run as a replica applies changes (no foreign-key or other triggers: every table
    that holds a row is emptied, so no reference is left dangling), and each sequence that gave
    out a value starts again, as ``RESTART IDENTITY`` would.
    """
    # A relay may be inside a handler that waits on a table TRUNCATE has locked, while TRUNCATE
    # waits on the relay's outbox rows: a wait PostgreSQL cannot see as a deadlock. A lock
    # timeout breaks it; the relay finishes, and the next try goes through.
    for attempt in range(50):
        try:
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
                tables = [
                    name for name in await _tables(conn, schemas) if name not in SEEDED_TABLES and name not in keep
                ]
                holding, drawn = await _written(conn, schemas, tables)
                if holding:
                    await conn.execute(text("SET LOCAL session_replication_role = replica"))
                    for table in holding:
                        await conn.execute(text(f"DELETE FROM {table}"))
                for sequence in drawn:
                    await conn.execute(text("ALTER SEQUENCE " + sequence + " RESTART"))
            return
        except DBAPIError as exc:
            if "lock timeout" not in str(exc) or attempt == 49:
                raise


async def _tables(conn: AsyncConnection, schemas: Sequence[str]) -> list[str]:
    rows = await conn.execute(
        text(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname = ANY(:schemas) AND tablename <> :version ORDER BY 1"
        ),
        {"schemas": list(schemas), "version": migrations.VERSION_TABLE},
    )
    return [r[0] for r in rows]


async def _written(conn: AsyncConnection, schemas: Sequence[str], tables: Sequence[str]) -> tuple[list[str], list[str]]:
    """Those of ``tables`` holding a row, and the sequences of ``tables`` that have given out a value."""
    if not tables:
        return [], []
    exists = " UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT FROM {t})" for t in tables)
    holding = {r[0] for r in await conn.execute(text(exists))}
    # Sequences owned by a column of one of ``tables`` (serial or identity), as RESTART IDENTITY picks them.
    drawn = await conn.execute(
        text(
            "SELECT format('%I.%I', s.schemaname, s.sequencename), format('%I.%I', tn.nspname, t.relname)"
            " FROM pg_sequences s"
            " JOIN pg_namespace sn ON sn.nspname = s.schemaname"
            " JOIN pg_class sc ON sc.relnamespace = sn.oid AND sc.relname = s.sequencename"
            " JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = sc.oid AND d.deptype IN ('a', 'i')"
            " JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace"
            " WHERE s.schemaname = ANY(:schemas) AND s.last_value IS NOT NULL ORDER BY 1"
        ),
        {"schemas": list(schemas)},
    )
    return [t for t in tables if t in holding], [sequence for sequence, table in drawn if table in tables]


@pytest.fixture
async def committed(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """For tests whose work must really commit (several connections, relays): cleaned after."""
    yield engine
    await truncate_all(engine)


@pytest.fixture
def app_client(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with app_client(app) as client``: the app's lifespan runs around the client."""

    @asynccontextmanager
    async def open_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client

    return open_client


@pytest.fixture
def service_client(
    settings: Settings, app_client: Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]
) -> Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with service_client("catalog") as client``: one service's app, as it runs alone."""

    def open_service(name: str) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return app_client(create_service_app(name, settings))

    return open_service


@pytest.fixture
async def auth(
    committed: AsyncEngine, service_client: Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]
) -> AsyncIterator[httpx.AsyncClient]:
    """The auth service over HTTP (in process); everything it commits is wiped afterwards."""
    async with service_client("auth") as client:
        yield client


def asyncpg_dsn(url: str) -> str:
    """A URL asyncpg's own ``connect`` accepts (no SQLAlchemy driver suffix)."""
    return async_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _forget_this_runs_redis_keys() -> Iterator[None]:
    """Whatever this run's apps wrote to a shared Redis under the run's prefix goes at the end."""
    yield
    url = os.environ.get("CATHOUSE_REDIS_URL")
    if not url:
        return
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{RUN_REDIS_PREFIX}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture
async def scratch(server_url: str, settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An empty database of its own, for a test that moves schemas down and up."""
    async with own_database(server_url, "cathouse_migrate") as url:
        engine = create_engine(settings, application_name="cathouse-tests", pool_size=1, url=url)
        try:
            yield engine
        finally:
            await engine.dispose()

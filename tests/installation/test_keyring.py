"""Master-key versions: created once, rotated online and resumably, retired, and refused to a wrong master key."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cathouse.contracts.reads import CatReader
from cathouse.installation.credentials import Credentials
from cathouse.installation.keyring import Keyring, KeyringError
from cathouse.installation.models import DataKey, Installation
from cathouse.platform import migrations
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.settings import Settings
from cathouse.services import COMPONENTS, create_service_app, registry
from tests.installation.conftest import People, publish
from tests.support import RUN_MASTER_KEY, cathouse_env, own_database

ANOTHER_MASTER_KEY = "another-master-key-of-32-chars-min!!"


@pytest.fixture
async def api(api: httpx.AsyncClient, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The platform, left only once its relay has handed out every event: truncating under an event
    in flight would wait on the relay's transaction while the relay waits on its handler."""
    yield api
    await drain_outbox(engine)


async def drain_outbox(engine: AsyncEngine) -> None:
    """Wait (10 s at most) until no event waits for the relay; one that keeps failing is left to it."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while True:
                async with engine.connect() as conn:
                    if not await conn.scalar(text("SELECT count(*) FROM events.outbox WHERE published_at IS NULL")):
                        return
                await asyncio.sleep(0.05)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return sessionmaker(engine)


@pytest.fixture(scope="module")
async def new_database(server_url: str, make_settings: Callable[..., Settings]) -> AsyncIterator[AsyncEngine]:
    """A database of its own, migrated, whose keyring tables nobody else has touched."""
    async with own_database(server_url, "cathouse_keyring") as url:
        engine = create_engine(make_settings(url), application_name="cathouse-tests", pool_size=5, max_overflow=5)
        try:
            await migrations.upgrade(engine, [COMPONENTS[c] for c in ("auth", "catalog", "installation")])
            yield engine
        finally:
            await engine.dispose()


@pytest.fixture
async def blank(new_database: AsyncEngine) -> AsyncEngine:
    """The new database as it is before the platform first starts on it."""
    async with new_database.begin() as conn:
        await conn.execute(text("TRUNCATE installation.master_key_versions CASCADE"))
    return new_database


async def versions(engine: AsyncEngine) -> dict[int, bool]:
    """Every master-key version in the database, and whether it is retired."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT version, retired_at IS NOT NULL AS retired FROM installation.master_key_versions")
        )
        return {r.version: r.retired for r in rows}


async def plant(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, people: People, slug: str, count: int
) -> dict[uuid.UUID, dict[str, str]]:
    """``count`` installations of the cat, each with a secret of its own, as the service stores them."""
    planted: dict[uuid.UUID, dict[str, str]] = {}
    async with sessions() as session:
        cat = await registry().get(CatReader).cat_by_slug(session, slug)
        assert cat is not None
        assert cat.current_version_id is not None
        for i in range(count):
            installation = Installation(
                id=uuid.uuid4(),
                user_id=uuid.UUID(people.owner.id),
                cat_id=cat.id,
                version_id=cat.current_version_id,
                name=f"Planted {slug} {i}",
                status="active",
                settings={"team": "blue"},
            )
            session.add(installation)
            await session.flush()
            planted[installation.id] = {"api_key": f"sk-{i}-{uuid.uuid4().hex}"}
            await Credentials(session, keyring).create(installation.id, planted[installation.id])
        await session.commit()
    return planted


async def data_keys(sessions: async_sessionmaker[AsyncSession], ids: set[uuid.UUID]) -> dict[uuid.UUID, DataKey]:
    async with sessions() as session:
        rows = await session.scalars(select(DataKey).where(DataKey.installation_id.in_(ids)))
        return {row.installation_id: row for row in rows}


async def revealed(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, ids: set[uuid.UUID]
) -> dict[uuid.UUID, dict[str, str]]:
    async with sessions() as session:
        credentials = Credentials(session, keyring)
        return {i: await credentials.reveal(i) for i in ids}


async def live_behind(engine: AsyncEngine, version: int) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text(
                "SELECT count(*) FROM installation.data_keys WHERE key_version < :version AND wrapped_key IS NOT NULL"
            ),
            {"version": version},
        )
        return int(found or 0)


async def test_a_new_database_gets_version_1_on_first_load(blank: AsyncEngine) -> None:
    keyring = Keyring(sessionmaker(blank), RUN_MASTER_KEY)
    await keyring.load()
    assert keyring.current_version == 1
    assert await versions(blank) == {1: False}

    # Loading again (a restart) keeps the version it made and can unwrap what it wrapped.
    async with sessionmaker(blank)() as session:
        data_key, row = await keyring.new_data_key(session, uuid.uuid4())
    restarted = Keyring(sessionmaker(blank), RUN_MASTER_KEY)
    await restarted.load()
    assert await versions(blank) == {1: False}
    assert await restarted.unwrap(row) == data_key
    # Even with no data key under it, the only version cannot be retired.
    with pytest.raises(KeyringError, match="current"):
        await restarted.retire(1)
    assert await versions(blank) == {1: False}


async def test_keyrings_starting_together_on_a_new_database_make_one_version(blank: AsyncEngine) -> None:
    keyrings = [Keyring(sessionmaker(blank), RUN_MASTER_KEY) for _ in range(4)]
    await asyncio.gather(*(k.load() for k in keyrings))
    assert await versions(blank) == {1: False}
    assert {k.current_version for k in keyrings} == {1}
    # They hold the same key: what one wraps, every other unwraps.
    async with sessionmaker(blank)() as session:
        data_key, row = await keyrings[0].new_data_key(session, uuid.uuid4())
    for other in keyrings[1:]:
        assert await other.unwrap(row) == data_key


async def test_rotation_rewraps_every_data_key_and_frees_the_old_version(
    api: httpx.AsyncClient, people: People, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    keyring = Keyring(sessions, RUN_MASTER_KEY)
    await keyring.load()
    # A running service's keyring, loaded before the rotation another process makes.
    running = Keyring(sessions, RUN_MASTER_KEY)
    await running.load()
    old = keyring.current_version
    planted = await plant(sessions, keyring, people, await publish(api, people), 30)
    ids = set(planted)
    before = await data_keys(sessions, ids)
    assert {k.key_version for k in before.values()} == {old}
    live = await live_behind(engine, old + 1)

    report = await keyring.rotate(batch_size=7)

    assert (report.version, report.created, report.rewrapped, report.remaining) == (old + 1, True, live, 0)
    after = await data_keys(sessions, ids)
    assert {k.key_version for k in after.values()} == {report.version}
    assert all(after[i].wrapped_key != before[i].wrapped_key for i in ids)
    assert await live_behind(engine, report.version) == 0
    # Another process, started after the rotation, reads every secret as it was.
    restarted = Keyring(sessions, RUN_MASTER_KEY)
    await restarted.load()
    assert await revealed(sessions, restarted, ids) == planted

    with pytest.raises(KeyringError):
        await keyring.retire(report.version)
    assert (await versions(engine))[report.version] is False
    await keyring.retire(old)
    assert (await versions(engine))[old] is True
    async with engine.connect() as conn:
        erased = await conn.scalar(
            text("SELECT sealed_key FROM installation.master_key_versions WHERE version = :v"), {"v": old}
        )
    assert erased == b""
    after_retire = Keyring(sessions, RUN_MASTER_KEY)
    await after_retire.load()
    assert after_retire.current_version == report.version
    assert await revealed(sessions, after_retire, ids) == planted

    # The running service wraps its next installation's key under the new version, not the
    # retired one it loaded at start, and what it stores reads back everywhere.
    late = await plant(sessions, running, people, await publish(api, people), 1)
    assert {k.key_version for k in (await data_keys(sessions, set(late))).values()} == {report.version}
    assert await revealed(sessions, after_retire, set(late)) == late

    # Retiring again, or a version that never was, is refused and changes nothing.
    with pytest.raises(KeyringError, match="already retired"):
        await keyring.retire(old)
    with pytest.raises(KeyringError, match="no master-key version"):
        await keyring.retire(report.version + 10)
    assert max(await versions(engine)) == report.version


async def test_a_rotation_killed_halfway_is_finished_by_the_next_one(
    api: httpx.AsyncClient,
    people: People,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyring = Keyring(sessions, RUN_MASTER_KEY)
    await keyring.load()
    old = keyring.current_version
    planted = await plant(sessions, keyring, people, await publish(api, people), 10)
    ids = set(planted)
    unwrap, unwrapped = keyring.unwrap, 0

    async def killed_in_the_second_batch(row: DataKey) -> bytes:
        nonlocal unwrapped
        unwrapped += 1
        if unwrapped > 4:
            raise RuntimeError("killed")
        return await unwrap(row)

    monkeypatch.setattr(keyring, "unwrap", killed_in_the_second_batch)
    with pytest.raises(RuntimeError, match="killed"):
        await keyring.rotate(batch_size=4)

    new = old + 1
    versions_after_crash = await versions(engine)
    assert max(versions_after_crash) == new
    halfway = await data_keys(sessions, ids)
    assert sorted(k.key_version for k in halfway.values()) == [old] * 6 + [new] * 4
    # The old version still wraps data keys: it cannot go yet.
    with pytest.raises(KeyringError, match="still use"):
        await keyring.retire(old)
    assert (await versions(engine))[old] is False
    behind = await live_behind(engine, new)

    restarted = Keyring(sessions, RUN_MASTER_KEY)
    report = await restarted.rotate(batch_size=4)

    assert (report.version, report.created, report.rewrapped, report.remaining) == (new, False, behind, 0)
    assert await versions(engine) == versions_after_crash, "no other version was made"
    assert {k.key_version for k in (await data_keys(sessions, ids)).values()} == {new}
    assert await live_behind(engine, new) == 0
    assert await revealed(sessions, restarted, ids) == planted
    await restarted.retire(old)
    assert (await versions(engine))[old] is True


async def test_another_master_key_is_refused_and_the_platform_does_not_start(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    database_url: str,
    make_settings: Callable[..., Settings],
) -> None:
    await Keyring(sessions, RUN_MASTER_KEY).load()  # the database has versions made with the run's key
    existing = await versions(engine)

    with pytest.raises(KeyringError, match="another master key") as refused:
        await Keyring(sessions, ANOTHER_MASTER_KEY).load()
    assert ANOTHER_MASTER_KEY not in str(refused.value)
    assert RUN_MASTER_KEY not in str(refused.value)
    assert await versions(engine) == existing

    app = create_service_app("installation", make_settings(database_url, master_key=ANOTHER_MASTER_KEY))
    with pytest.raises(KeyringError):
        async with app.router.lifespan_context(app):
            pytest.fail("the installation service started with a master key that does not fit")
    assert await versions(engine) == existing


def cathouse(args: list[str], database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = cathouse_env(tmp_path, database_url=database_url)
    return subprocess.run(
        [sys.executable, "-m", "cathouse", *args], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.e2e
async def test_the_cli_rotates_then_retires_the_first_version(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    rotated = cathouse(["keys", "rotate", "--batch-size", "5"], database_url, tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    after = await versions(engine)
    current = max(after)
    assert current >= 2
    assert f"under version {current}" in rotated.stdout
    assert await live_behind(engine, current) == 0

    refused = cathouse(["keys", "retire", str(current)], database_url, tmp_path)
    assert refused.returncode == 1
    assert "Refused" in refused.stderr
    assert "current" in refused.stderr
    assert (await versions(engine))[current] is False

    previous = max(v for v, is_retired in after.items() if v < current and not is_retired)
    retired = cathouse(["keys", "retire", str(previous)], database_url, tmp_path)
    assert retired.returncode == 0, retired.stderr
    assert f"version {previous} is retired" in retired.stdout
    assert (await versions(engine))[previous] is True

    again = cathouse(["keys", "retire", str(previous)], database_url, tmp_path)
    assert again.returncode == 1
    assert "already retired" in again.stderr

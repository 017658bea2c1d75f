"""Installation credentials: never shown, never logged, bound to their row, gone on uninstall."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cathouse.installation.credentials import Credentials
from cathouse.installation.keyring import Keyring, KeyringError, encrypt_field
from cathouse.platform.crypto import NONCE_BYTES, DecryptionError, seal
from cathouse.platform.db import sessionmaker
from tests.conftest import asyncpg_dsn
from tests.installation.conftest import FakeCat, People, install_body, publish, wait_for_status
from tests.support import RUN_MASTER_KEY

INSTALLATIONS = "/api/v1/installations"
TWO_SECRETS = {
    "type": "object",
    "properties": {
        "api_key": {"type": "string", "writeOnly": True},
        "api_secret": {"type": "string", "writeOnly": True},
        "team": {"type": "string"},
    },
    "required": ["api_key", "api_secret"],
}


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


@pytest.fixture
async def keyring(sessions: async_sessionmaker[AsyncSession]) -> Keyring:
    """A keyring of its own, as the proxy's process has: it reads only what the database holds."""
    keyring = Keyring(sessions, RUN_MASTER_KEY)
    await keyring.load()
    return keyring


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log record, at every level, as the JSON loguru would write, for as long as the test runs."""
    lines: list[str] = []
    sink_id = logger.add(lines.append, level="DEBUG", serialize=True)
    try:
        yield lines
    finally:
        logger.remove(sink_id)


async def install(api: httpx.AsyncClient, people: People, slug: str, **changes: Any) -> httpx.Response:
    response = await api.post(INSTALLATIONS, json=install_body(slug, **changes), headers=people.owner.headers)
    assert response.status_code == 201, response.text
    return response


async def reveal(sessions: async_sessionmaker[AsyncSession], keyring: Keyring, installation_id: str) -> dict[str, str]:
    async with sessions() as session:
        return await Credentials(session, keyring).reveal(uuid.UUID(installation_id))


def traces(value: str) -> list[str]:
    """How a secret could show up in text: as itself, or as the hex a dump prints for bytea."""
    return [value, value.encode().hex()]


async def sql_dump(engine: AsyncEngine) -> str:
    """Every row of every table of every schema, as text."""
    async with engine.connect() as conn:
        tables = (
            await conn.execute(
                text(
                    "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
                )
            )
        ).scalars()
        rows: list[str] = []
        for table in list(tables):
            rows.extend((await conn.execute(text(f"SELECT t::text FROM {table} t"))).scalars())
    return "\n".join(rows)


async def pg_dump(database_url: str) -> str | None:
    """What ``pg_dump`` writes, when a ``pg_dump`` that accepts this server's version is installed."""
    binary = shutil.which("pg_dump")
    if binary is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--no-owner",
        f"--dbname={asyncpg_dsn(database_url)}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    # An older pg_dump refuses a newer server (the embedded one may be): the SQL dump still runs.
    return out.decode() if proc.returncode == 0 else None


async def test_a_planted_secret_never_leaves_its_ciphertext(
    api: httpx.AsyncClient,
    people: People,
    engine: AsyncEngine,
    database_url: str,
    fake_cat: FakeCat,
    sessions: async_sessionmaker[AsyncSession],
    keyring: Keyring,
    log_lines: list[str],
) -> None:
    first, second = f"canary-{uuid.uuid4().hex}", f"canary-{uuid.uuid4().hex}"
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    seen: list[str] = []

    created = await install(api, people, slug, secrets={"api_key": first})
    seen.append(created.text)
    installation_id = created.json()["id"]
    seen.append(json.dumps(await wait_for_status(api, people.owner, installation_id, "active")))
    replaced = await api.put(
        f"{INSTALLATIONS}/{installation_id}/secrets",
        json={"secrets": {"api_key": second}},
        headers=people.owner.headers,
    )
    assert replaced.status_code == 200, replaced.text
    seen.append(replaced.text)
    deliveries = await api.get(f"{INSTALLATIONS}/{installation_id}/deliveries", headers=people.owner.headers)
    assert deliveries.status_code == 200
    assert deliveries.json(), "the install webhook was delivered"
    for path, account in [
        (f"{INSTALLATIONS}/{installation_id}", people.owner),
        (INSTALLATIONS, people.owner),
        (f"{INSTALLATIONS}?everyone=true", people.admin),
        (f"{INSTALLATIONS}/deliveries?cat={slug}", people.publisher),
        *[(f"{INSTALLATIONS}/{installation_id}/deliveries/{d['id']}", people.owner) for d in deliveries.json()],
    ]:
        response = await api.get(path, headers=account.headers)
        assert response.status_code == 200, (path, response.text)
        seen.append(response.text)
    seen.append(deliveries.text)

    # The secret is really kept: its absence below is not for want of storing it.
    assert await reveal(sessions, keyring, installation_id) == {"api_key": second}

    async with engine.connect() as conn:
        outbox = (
            await conn.execute(
                text("SELECT payload::text FROM events.outbox WHERE aggregate_id = :id"), {"id": installation_id}
            )
        ).scalars()
        payloads = list(outbox)
    dumps = [await sql_dump(engine)]
    if (dumped := await pg_dump(database_url)) is not None:
        dumps.append(dumped)
    webhooks = [json.dumps(headers) + body.decode() for headers, body in fake_cat.received]

    assert len(payloads) >= 2, "the install and the secrets change are events"
    assert fake_cat.received, "the cat was told of its installation"
    assert log_lines, "the platform logged while this ran"
    assert all(installation_id in dump for dump in dumps), "the dumps hold the installation's rows"
    for canary in (first, second):
        for trace in traces(canary):
            for where, texts in [
                ("API response", seen),
                ("outbox payload", payloads),
                ("database dump", dumps),
                ("log line", log_lines),
                ("webhook to the cat", webhooks),
            ]:
                assert not [t for t in texts if trace in t], f"the secret is in a {where}"


async def test_the_api_shows_each_secret_field_with_a_fingerprint_never_the_value(
    api: httpx.AsyncClient, people: People
) -> None:
    slug = await publish(api, people)
    created = (await install(api, people, slug, secrets={"api_key": "sk-one"})).json()
    url = f"{INSTALLATIONS}/{created['id']}"
    [shown] = created["secrets"]
    assert set(shown) == {"field", "fingerprint", "set_at"}
    assert shown["field"] == "api_key"
    # A keyed hash: not a digest anyone could compute from a guessed value.
    assert shown["fingerprint"] not in hashlib.sha256(b"sk-one").hexdigest()
    assert (await api.get(url, headers=people.owner.headers)).json()["secrets"] == [shown]

    async def put(value: str) -> dict[str, Any]:
        response = await api.put(f"{url}/secrets", json={"secrets": {"api_key": value}}, headers=people.owner.headers)
        assert response.status_code == 200, response.text
        [field] = response.json()["secrets"]
        assert field == (await api.get(url, headers=people.owner.headers)).json()["secrets"][0]
        return dict(field)

    same = await put("sk-one")
    assert same["fingerprint"] == shown["fingerprint"]
    assert same["set_at"] > shown["set_at"]
    changed = await put("sk-two")
    assert changed["fingerprint"] != shown["fingerprint"]
    back = await put("sk-one")
    assert back["fingerprint"] == shown["fingerprint"]

    # Another installation holding the same value cannot be told to share it.
    other = (await install(api, people, slug, name="Other", secrets={"api_key": "sk-one"})).json()
    assert other["secrets"][0]["fingerprint"] != shown["fingerprint"]


async def test_a_ciphertext_moved_or_altered_is_refused_without_its_plaintext(
    api: httpx.AsyncClient,
    people: People,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    keyring: Keyring,
) -> None:
    slug = await publish(api, people, settings_schema=TWO_SECRETS)
    secrets = {
        "a": {"api_key": "a-key-0123456789", "api_secret": "a-secret-0123456789"},
        "b": {"api_key": "b-key-0123456789", "api_secret": "b-secret-0123456789"},
    }
    ids = {
        name: (await install(api, people, slug, name=name, secrets=values)).json()["id"]
        for name, values in secrets.items()
    }
    plaintexts = [v for values in secrets.values() for v in values.values()]

    async def sql(statement: str, **params: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(statement), params)

    async def assert_refused(installation_id: str) -> None:
        with pytest.raises(DecryptionError) as refused:
            await reveal(sessions, keyring, installation_id)
        said = f"{refused.value!r} {refused.value} {refused.value.__cause__!r}"
        assert not [p for p in plaintexts if p in said]

    async def assert_intact() -> None:
        for name, installation_id in ids.items():
            assert await reveal(sessions, keyring, installation_id) == secrets[name]

    await assert_intact()

    swap = (
        "UPDATE installation.credentials c SET ciphertext = o.ciphertext FROM installation.credentials o "
        "WHERE (c.installation_id, c.field) = (:one, :one_field) AND (o.installation_id, o.field) = (:two, :two_field) "
        "OR (c.installation_id, c.field) = (:two, :two_field) AND (o.installation_id, o.field) = (:one, :one_field)"
    )
    # To another installation (another data key), and to another field of the same one (the same key).
    for one, one_field, two, two_field in [
        (ids["a"], "api_key", ids["b"], "api_key"),
        (ids["a"], "api_key", ids["a"], "api_secret"),
    ]:
        places = {"one": one, "one_field": one_field, "two": two, "two_field": two_field}
        await sql(swap, **places)
        await assert_refused(one)
        await assert_refused(two)
        await sql(swap, **places)
        await assert_intact()

    flip = (
        "UPDATE installation.credentials SET ciphertext = set_bit(ciphertext, :bit, 1 - get_bit(ciphertext, :bit)) "
        "WHERE installation_id = :id AND field = 'api_key'"
    )
    async with engine.connect() as conn:
        length = await conn.scalar(
            text(
                "SELECT length(ciphertext) FROM installation.credentials "
                "WHERE installation_id = :id AND field = 'api_key'"
            ),
            {"id": ids["a"]},
        )
    assert length is not None
    # One bit of the nonce, of the encrypted value, of the tag.
    for bit in (3, NONCE_BYTES * 8 + 5, length * 8 - 1):
        await sql(flip, bit=bit, id=ids["a"])
        await assert_refused(ids["a"])
        await sql(flip, bit=bit, id=ids["a"])
        await assert_intact()


def test_a_hundred_thousand_encryptions_repeat_no_nonce() -> None:
    key = bytes(range(32))
    count = 100_000
    nonces = {seal(key, b"sk-live-0123456789", b"credential")[:NONCE_BYTES] for _ in range(count)}
    assert len(nonces) == count
    # The same goes for the fields sealed under one installation's data key.
    installation_id = uuid.uuid4()
    fields = {encrypt_field(key, installation_id, "api_key", "sk")[:NONCE_BYTES] for _ in range(1000)}
    assert len(fields) == 1000
    assert not fields & nonces


async def test_uninstalling_destroys_the_data_key_for_good(
    api: httpx.AsyncClient,
    people: People,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    keyring: Keyring,
) -> None:
    slug = await publish(api, people)
    installation_id = (await install(api, people, slug, secrets={"api_key": "sk-doomed-0123456789"})).json()["id"]
    await wait_for_status(api, people.owner, installation_id, "active")
    assert await reveal(sessions, keyring, installation_id) == {"api_key": "sk-doomed-0123456789"}
    async with engine.connect() as conn:
        backup = (
            await conn.execute(
                text("SELECT field, ciphertext, fingerprint FROM installation.credentials WHERE installation_id = :id"),
                {"id": installation_id},
            )
        ).one()

    response = await api.delete(f"{INSTALLATIONS}/{installation_id}", headers=people.owner.headers)
    assert response.status_code == 200, response.text
    assert response.json()["secrets"] == []
    await wait_for_status(api, people.owner, installation_id, "uninstalled")

    async with engine.connect() as conn:
        key = (
            await conn.execute(
                text("SELECT wrapped_key, destroyed_at FROM installation.data_keys WHERE installation_id = :id"),
                {"id": installation_id},
            )
        ).one()
        left = await conn.scalar(
            text("SELECT count(*) FROM installation.credentials WHERE installation_id = :id"), {"id": installation_id}
        )
    assert key.wrapped_key is None
    assert key.destroyed_at is not None
    assert left == 0
    assert await revealed_or_nothing(sessions, keyring, installation_id) == {}

    # Even the ciphertext put back from a backup taken before the uninstall cannot be read.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO installation.credentials (installation_id, field, ciphertext, fingerprint) "
                "VALUES (:id, :field, :ciphertext, :fingerprint)"
            ),
            {"id": installation_id, **backup._asdict()},
        )
    assert await revealed_or_nothing(sessions, keyring, installation_id) == {}
    refused = await api.put(
        f"{INSTALLATIONS}/{installation_id}/secrets",
        json={"secrets": {"api_key": "sk-again"}},
        headers=people.owner.headers,
    )
    assert refused.status_code == 409


async def revealed_or_nothing(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, installation_id: str
) -> dict[str, str]:
    """What can still be read: nothing, whether ``reveal`` says so with an error or an empty answer."""
    try:
        return await reveal(sessions, keyring, installation_id)
    except (KeyringError, DecryptionError):
        return {}

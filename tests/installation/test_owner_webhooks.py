"""The owner's own webhook: registered with a secret shown once, and told, signed, when an
installation's credentials break. The proxy's verdict is recorded in the outbox as the proxy
records it; a real HTTP server on loopback stands in for the owner's receiver."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cathouse import webhooks
from cathouse.contracts.events.installation import InstallationStatusChanged
from cathouse.contracts.events.proxy import CredentialsAccepted, CredentialsRejected
from cathouse.contracts.webhooks import Webhook
from cathouse.installation.owner_notices import OwnerNotices
from cathouse.platform.db import sessionmaker
from cathouse.platform.outbox import record
from cathouse.platform.outbox.relay import Event
from cathouse.platform.settings import Settings
from tests.installation.conftest import FakeCat, People, install_body, publish, wait_for_status

HOOK = "/api/v1/installations/owner-webhook"
INSTALLATIONS = "/api/v1/installations"


async def register(api: httpx.AsyncClient, people: People, url: str, **body: Any) -> dict[str, Any]:
    response = await api.put(HOOK, json={"url": url, **body}, headers=people.owner.headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_the_secret_is_shown_when_made_or_rotated_and_never_again(api: httpx.AsyncClient, people: People) -> None:
    created = await api.put(HOOK, json={"url": "https://example.com/a"}, headers=people.owner.headers)
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    first = created.json()
    assert first["url"] == "https://example.com/a"
    assert first["secret"].startswith("whsec_")

    read = await api.get(HOOK, headers=people.owner.headers)
    assert read.status_code == 200
    assert "secret" not in read.json()
    assert first["secret"] not in read.text

    moved = await register(api, people, "https://example.com/b")
    assert "secret" not in moved
    assert (moved["url"], moved["created_at"]) == ("https://example.com/b", first["created_at"])
    assert moved["updated_at"] >= first["updated_at"]

    rotated = await register(api, people, "https://example.com/b", rotate_secret=True)
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != first["secret"]


async def test_a_bad_url_is_refused_and_changes_nothing(api: httpx.AsyncClient, people: People) -> None:
    await register(api, people, "https://example.com/kept")
    for body in (
        {"url": "ftp://example.com/x"},
        {"url": "not a url"},
        {"url": "https://example.com", "extra": 1},
        {},
        {"url": "https://example.com/x", "rotate_secret": 0},
    ):
        refused = await api.put(HOOK, json=body, headers=people.owner.headers)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    kept = (await api.get(HOOK, headers=people.owner.headers)).json()
    assert kept["url"] == "https://example.com/kept"


async def test_yours_is_yours_alone_and_deleting_removes_it(api: httpx.AsyncClient, people: People) -> None:
    assert (await api.get(HOOK)).status_code == 401
    assert (await api.get(HOOK, headers=people.owner.headers)).status_code == 404
    await register(api, people, "https://example.com/mine")
    strangers = await api.get(HOOK, headers=people.stranger.headers)
    assert strangers.status_code == 404
    assert strangers.headers["content-type"] == "application/problem+json"
    assert (await api.delete(HOOK, headers=people.stranger.headers)).status_code == 404
    assert (await api.get(HOOK, headers=people.owner.headers)).json()["url"] == "https://example.com/mine"
    assert (await api.delete(HOOK, headers=people.owner.headers)).status_code == 204
    assert (await api.get(HOOK, headers=people.owner.headers)).status_code == 404
    assert (await api.delete(HOOK, headers=people.owner.headers)).status_code == 404


async def installed(api: httpx.AsyncClient, people: People) -> dict[str, Any]:
    """An active installation of a cat that has no webhook of its own."""
    slug = await publish(api, people)
    created = await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)
    assert created.status_code == 201, created.text
    return await wait_for_status(api, people.owner, created.json()["id"], "active")


async def verdict(engine: AsyncEngine, installation: dict[str, Any], *, rejected: bool) -> None:
    """What the proxy records when the cat answers 401 to the installation's credentials (or
    accepts them again)."""
    ids = {"installation_id": uuid.UUID(installation["id"]), "cat_id": uuid.UUID(installation["cat"]["id"])}
    async with AsyncSession(engine) as session, session.begin():
        record(session, CredentialsRejected(**ids, upstream_status=401) if rejected else CredentialsAccepted(**ids))


async def received(receiver: FakeCat, count: int, within: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
    deadline = asyncio.get_running_loop().time() + within
    while len(receiver.received) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(receiver.received)} received, not {count}"
        await asyncio.sleep(0.05)
    return receiver.received


async def test_the_owner_is_told_signed_when_the_credentials_break(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat, engine: AsyncEngine
) -> None:
    secret = (await register(api, people, f"{fake_cat.url}/hooks"))["secret"]
    installation = await installed(api, people)
    await verdict(engine, installation, rejected=True)
    broken = await wait_for_status(api, people.owner, installation["id"], "credentials_invalid")

    [(headers, body)] = await received(fake_cat, 1)
    webhooks.verify(secret, headers, body)  # raises unless signed with the secret the PUT showed
    message = json.loads(body)
    assert Webhook.model_validate(message).model_dump(mode="json") == message  # the documented body
    assert message["type"] == "installation.credentials_invalid"
    assert message["data"]["installation_id"] == installation["id"]
    assert message["data"]["user_id"] == people.owner.id
    assert message["data"]["reason"] == broken["status_reason"] == "the cat answered 401 to its credentials"
    assert secret not in body.decode()
    assert "sk-live" not in body.decode()
    # The cat's publisher reads the cat's deliveries: never the owner's URL.
    listed = await api.get(f"{INSTALLATIONS}/{installation['id']}/deliveries", headers=people.publisher.headers)
    assert listed.json() == []


async def test_without_a_webhook_nothing_is_sent_and_once_registered_the_next_break_is(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat, engine: AsyncEngine
) -> None:
    installation = await installed(api, people)
    await verdict(engine, installation, rejected=True)
    await wait_for_status(api, people.owner, installation["id"], "credentials_invalid")
    await verdict(engine, installation, rejected=False)
    await wait_for_status(api, people.owner, installation["id"], "active")

    secret = (await register(api, people, f"{fake_cat.url}/hooks"))["secret"]
    await verdict(engine, installation, rejected=True)
    await wait_for_status(api, people.owner, installation["id"], "credentials_invalid")
    # An installation's events are handled in order: the first break was handled, and sent nothing.
    [(headers, body)] = await received(fake_cat, 1)
    webhooks.verify(secret, headers, body)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT recipient, status FROM installation.webhook_deliveries"))).all()
    assert [tuple(row) for row in rows] in ([("owner", "succeeded")], [("owner", "pending")])


async def test_an_event_handled_twice_makes_one_delivery(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat, engine: AsyncEngine, platform_settings: Settings
) -> None:
    await register(api, people, f"{fake_cat.url}/hooks")
    installation = await installed(api, people)
    moved = InstallationStatusChanged.model_validate(
        {
            "installation_id": installation["id"],
            "user_id": people.owner.id,
            "cat_id": installation["cat"]["id"],
            "version": installation["version"],
            "from": "active",
            "to": "credentials_invalid",
            "reason": "the cat answered 401 to its credentials",
            "by": None,
        }
    )
    event = Event(
        id=str(uuid.uuid4()),
        seq=1,
        aggregate_type=moved.aggregate,
        aggregate_id=installation["id"],
        event_type=moved.type,
        schema_version=moved.schema_version,
        payload=moved.payload(),
        occurred_at=datetime.now(UTC),
        request_id=None,
        attempts=0,
    )
    notices = OwnerNotices(sessionmaker(engine), platform_settings.master_key_value(), lambda: None)
    await notices.on_event(event)
    await notices.on_event(event)  # the relay delivers at least once
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM installation.webhook_deliveries WHERE recipient = 'owner'")
        )
    assert count == 1

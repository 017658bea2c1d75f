"""Installation API keys: shown once, stored as a hash, listed and revoked by the owner only."""

from __future__ import annotations

import hashlib

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.installation.conftest import People, install_body, publish

INSTALLATIONS = "/api/v1/installations"


async def test_a_key_is_shown_once_and_kept_only_as_a_hash(
    api: httpx.AsyncClient, people: People, engine: AsyncEngine
) -> None:
    slug = await publish(api, people)
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    url = f"{INSTALLATIONS}/{created['id']}/api-keys"
    made = await api.post(url, json={"name": "production"}, headers=people.owner.headers)
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert key.startswith("chk_")
    assert len(key) > 40
    assert made.json()["prefix"] == key[:12]
    listed = (await api.get(url, headers=people.owner.headers)).json()
    assert [k["name"] for k in listed] == ["production"]
    assert key not in str(listed)
    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT t::text FROM installation.api_keys t"))).scalars().all()
        digest = await conn.scalar(text("SELECT key_hash FROM installation.api_keys"))
    assert key not in " ".join(stored)
    assert digest == hashlib.sha256(key.encode()).digest()
    revoked = await api.delete(f"{url}/{made.json()['id']}", headers=people.owner.headers)
    assert revoked.status_code == 204
    assert (await api.get(url, headers=people.owner.headers)).json()[0]["revoked_at"] is not None


async def test_only_the_owner_creates_keys(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    url = f"{INSTALLATIONS}/{created['id']}/api-keys"
    for account in (people.stranger, people.admin):
        response = await api.post(url, json={"name": "mine"}, headers=account.headers)
        assert response.status_code == 404
    for name in ("", "   ", "tab\there"):  # as the published pattern says
        bad = await api.post(url, json={"name": name}, headers=people.owner.headers)
        assert bad.status_code == 422, name

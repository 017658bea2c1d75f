"""Installing and running cats over HTTP: validation, lifecycle, consent, upgrades, and who may see what."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.catalog.conftest import VERSION
from tests.installation.conftest import People, install_body, publish, version, wait_for_status

INSTALLATIONS = "/api/v1/installations"


async def install(api: httpx.AsyncClient, people: People, slug: str, **changes: Any) -> dict[str, Any]:
    response = await api.post(INSTALLATIONS, json=install_body(slug, **changes), headers=people.owner.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_installing_a_cat_without_a_webhook_makes_it_active(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    created = await install(api, people, slug)
    assert created["status"] == "pending"
    assert created["version"] == "1.0.0"
    assert created["cat"]["slug"] == slug
    assert sorted(g["permission"] for g in created["permissions"]) == ["points:read", "points:write"]
    assert all(g["granted_by"] == people.owner.id for g in created["permissions"])
    assert [s["field"] for s in created["secrets"]] == ["api_key"]
    active = await wait_for_status(api, people.owner, created["id"], "active")
    assert active["activated_at"] is not None
    listed = (await api.get(INSTALLATIONS, headers=people.owner.headers)).json()["items"]
    assert [i["id"] for i in listed] == [created["id"]]


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"permissions": ["points:read"]}, "body.permissions"),
        ({"permissions": ["points:read", "points:write", "badges:write"]}, "body.permissions"),
        ({"settings": {"team": 7}}, "body.settings.team"),
        ({"settings": {"api_key": "sk-in-the-wrong-place"}}, "body.settings.api_key"),
        ({"secrets": {}}, "body.secrets.api_key"),
        ({"secrets": {"api_key": "x", "other": "y"}}, "body.secrets.other"),
        ({"name": ""}, "body.name"),
        ({"name": "x" * 65}, "body.name"),
        ({"status": "active"}, "body.status"),
    ],
)
async def test_bad_installs_are_refused_naming_the_field_and_change_nothing(
    api: httpx.AsyncClient, people: People, engine: AsyncEngine, changes: dict[str, Any], loc: str
) -> None:
    slug = await publish(api, people)
    response = await api.post(INSTALLATIONS, json=install_body(slug, **changes), headers=people.owner.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert loc in [e["loc"] for e in response.json()["errors"]]
    async with engine.connect() as conn:
        for table in ("installations", "credentials", "data_keys", "installation_permissions"):
            assert await conn.scalar(text(f"SELECT count(*) FROM installation.{table}")) == 0


async def test_a_secret_that_fails_its_schema_is_not_quoted_back(api: httpx.AsyncClient, people: People) -> None:
    schema = {
        "type": "object",
        "properties": {"api_key": {"type": "string", "writeOnly": True, "minLength": 40}},
        "required": ["api_key"],
    }
    slug = await publish(api, people, settings_schema=schema)
    body = install_body(slug, settings={}, secrets={"api_key": "short-canary-value"})
    response = await api.post(INSTALLATIONS, json=body, headers=people.owner.headers)
    assert response.status_code == 422
    assert "short-canary-value" not in response.text
    assert response.json()["errors"][0]["loc"] == "body.secrets.api_key"


async def test_unknown_cats_versions_and_taken_names(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    missing = await api.post(INSTALLATIONS, json=install_body("no-such-cat"), headers=people.owner.headers)
    assert missing.status_code == 404
    bad_version = await api.post(INSTALLATIONS, json=install_body(slug, version="9.9.9"), headers=people.owner.headers)
    assert bad_version.status_code == 404
    await install(api, people, slug, name="Main")
    again = await api.post(INSTALLATIONS, json=install_body(slug, name="main"), headers=people.owner.headers)
    assert again.status_code == 409
    # Another user may use the same name; the owner may run a second instance under another.
    other = await api.post(INSTALLATIONS, json=install_body(slug, name="Main"), headers=people.stranger.headers)
    assert other.status_code == 201
    await install(api, people, slug, name="Second")


async def test_every_route_answers_another_user_with_404(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    created = await install(api, people, slug)
    base = f"{INSTALLATIONS}/{created['id']}"
    headers = people.stranger.headers
    attempts = [
        api.get(base, headers=headers),
        api.patch(base, json={"name": "Mine"}, headers=headers),
        api.put(f"{base}/secrets", json={"secrets": {"api_key": "stolen"}}, headers=headers),
        api.put(f"{base}/permissions", json={"permissions": ["points:read", "points:write"]}, headers=headers),
        api.post(f"{base}/upgrade", json={"version": "1.0.0"}, headers=headers),
        api.post(f"{base}/permissions/accept", headers=headers),
        api.post(f"{base}/suspend", json={}, headers=headers),
        api.post(f"{base}/resume", headers=headers),
        api.post(f"{base}/retry", headers=headers),
        api.delete(base, headers=headers),
        api.get(f"{base}/api-keys", headers=headers),
        api.post(f"{base}/api-keys", json={"name": "k"}, headers=headers),
        api.get(f"{base}/deliveries", headers=headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, (response.request.method, response.request.url, response.text)
        assert response.json()["detail"] == "There is no such installation."
        assert slug not in response.text
    assert (await api.get(INSTALLATIONS, headers=headers)).json()["items"] == []
    assert (await api.get(base, headers=people.owner.headers)).json()["name"] == "Main"


async def test_admins_see_and_suspend_any_installation(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    created = await install(api, people, slug)
    await wait_for_status(api, people.owner, created["id"], "active")
    seen = await api.get(f"{INSTALLATIONS}/{created['id']}", headers=people.admin.headers)
    assert seen.status_code == 200
    everyone = await api.get(INSTALLATIONS, params={"everyone": True}, headers=people.admin.headers)
    assert created["id"] in [i["id"] for i in everyone.json()["items"]]
    base = f"{INSTALLATIONS}/{created['id']}"
    # Acting on someone else's installation, an admin says why: the owner is told.
    unexplained = await api.post(f"{base}/suspend", json={}, headers=people.admin.headers)
    assert unexplained.status_code == 422, unexplained.text
    assert [e["loc"] for e in unexplained.json()["errors"]] == ["body.reason"]
    assert (await api.get(base, headers=people.owner.headers)).json()["status"] == "active"
    suspended = await api.post(f"{base}/suspend", json={"reason": "Abuse report"}, headers=people.admin.headers)
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["status_reason"] == "Abuse report"
    no_reason = await api.delete(base, headers=people.admin.headers)
    assert no_reason.status_code == 422, no_reason.text
    assert [e["loc"] for e in no_reason.json()["errors"]] == ["query.reason"]
    removed = await api.delete(base, params={"reason": "Confirmed abuse"}, headers=people.admin.headers)
    assert (removed.json()["status"], removed.json()["status_reason"]) == ("uninstalling", "Confirmed abuse")


async def test_admins_do_not_act_as_owners(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    created = await install(api, people, slug)
    base = f"{INSTALLATIONS}/{created['id']}"
    await wait_for_status(api, people.owner, created["id"], "active")
    before = (await api.get(base, headers=people.owner.headers)).json()
    for method, url, body in [
        ("PATCH", base, {"settings": {"team": "red"}}),
        ("PUT", f"{base}/secrets", {"secrets": {"api_key": "sk-admin-000000"}}),
        ("PUT", f"{base}/permissions", {"permissions": ["points:read", "points:write", "points:export"]}),
        ("POST", f"{base}/api-keys", {"name": "mine now"}),
    ]:
        refused = await api.request(method, url, json=body, headers=people.admin.headers)
        assert refused.status_code == 404, (method, url, refused.text)
        assert refused.json()["detail"] == "There is no such installation."
    assert (await api.get(base, headers=people.owner.headers)).json() == before


async def test_lifecycle_moves_and_an_illegal_one_names_the_state(
    api: httpx.AsyncClient, people: People, engine: AsyncEngine
) -> None:
    slug = await publish(api, people)
    created = await install(api, people, slug)
    base = f"{INSTALLATIONS}/{created['id']}"
    headers = people.owner.headers
    await wait_for_status(api, people.owner, created["id"], "active")
    illegal = await api.post(f"{base}/resume", headers=headers)
    assert illegal.status_code == 409
    assert illegal.json()["current_status"] == "active"
    assert (await api.post(f"{base}/suspend", json={}, headers=headers)).json()["status"] == "suspended"
    assert (await api.post(f"{base}/resume", headers=headers)).json()["status"] == "active"
    uninstalling = await api.delete(base, headers=headers)
    assert uninstalling.json()["status"] == "uninstalling"
    assert uninstalling.json()["secrets"] == []
    await wait_for_status(api, people.owner, created["id"], "uninstalled")
    assert (await api.post(f"{base}/suspend", json={}, headers=headers)).status_code == 409
    assert (await api.patch(base, json={"name": "Again"}, headers=headers)).status_code == 409
    async with engine.connect() as conn:
        moves = (
            await conn.execute(
                text(
                    "SELECT payload->>'from', payload->>'to' FROM events.outbox "
                    "WHERE aggregate_id = :id AND event_type = 'installation.status_changed' ORDER BY seq"
                ),
                {"id": created["id"]},
            )
        ).all()
    assert [tuple(m) for m in moves] == [
        ("pending", "active"),
        ("active", "suspended"),
        ("suspended", "active"),
        ("active", "uninstalling"),
        ("uninstalling", "uninstalled"),
    ]
    # Its name is free again.
    await install(api, people, slug, name="Main")


async def test_rename_and_settings(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    created = await install(api, people, slug)
    base = f"{INSTALLATIONS}/{created['id']}"
    changed = await api.patch(base, json={"name": "Renamed", "settings": {"team": "red"}}, headers=people.owner.headers)
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["settings"]) == ("Renamed", {"team": "red"})
    refused = await api.patch(base, json={"settings": {"team": ["not", "a", "string"]}}, headers=people.owner.headers)
    assert refused.status_code == 422
    assert (await api.get(base, headers=people.owner.headers)).json()["settings"] == {"team": "red"}


async def test_optional_permissions_come_and_go_required_ones_stay(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    created = await install(api, people, slug)
    url = f"{INSTALLATIONS}/{created['id']}/permissions"
    every = ["points:read", "points:write", "points:export"]
    granted = await api.put(url, json={"permissions": every}, headers=people.owner.headers)
    assert sorted(g["permission"] for g in granted.json()["permissions"]) == sorted(every)
    revoked = await api.put(url, json={"permissions": every[:2]}, headers=people.owner.headers)
    assert "points:export" not in [g["permission"] for g in revoked.json()["permissions"]]
    refused = await api.put(url, json={"permissions": ["points:read"]}, headers=people.owner.headers)
    assert refused.status_code == 422
    assert "points:write" in refused.json()["detail"]


async def test_an_upgrade_asking_for_more_waits_for_consent(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    wider = version(
        version="1.1.0",
        permissions=[*VERSION["permissions"], {"name": "badges:write", "description": "Award badges"}],
        endpoints=[*VERSION["endpoints"], {"method": "POST", "path": "/badges", "permission": "badges:write"}],
    )
    await api.post(f"/api/v1/cats/{slug}/versions", json=wider, headers=people.publisher.headers)
    await api.post(f"/api/v1/cats/{slug}/versions/1.1.0/publish", headers=people.publisher.headers)
    created = await install(api, people, slug, version="1.0.0")
    await wait_for_status(api, people.owner, created["id"], "active")
    base = f"{INSTALLATIONS}/{created['id']}"
    pending = await api.post(f"{base}/upgrade", json={"version": "1.1.0"}, headers=people.owner.headers)
    assert pending.status_code == 200, pending.text
    body = pending.json()
    assert (body["status"], body["version"], body["target_version"]) == ("permissions_pending", "1.0.0", "1.1.0")
    assert "badges:write" not in [g["permission"] for g in body["permissions"]]
    accepted = await api.post(f"{base}/permissions/accept", headers=people.owner.headers)
    body = accepted.json()
    assert (body["status"], body["version"], body["target_version"]) == ("active", "1.1.0", None)
    assert "badges:write" in [g["permission"] for g in body["permissions"]]
    again = await api.post(f"{base}/permissions/accept", headers=people.owner.headers)
    assert again.status_code == 409


async def test_an_upgrade_within_what_was_granted_is_immediate(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    await api.post(f"/api/v1/cats/{slug}/versions", json=version(version="1.0.1"), headers=people.publisher.headers)
    await api.post(f"/api/v1/cats/{slug}/versions/1.0.1/publish", headers=people.publisher.headers)
    created = await install(api, people, slug, version="1.0.0")
    await wait_for_status(api, people.owner, created["id"], "active")
    upgraded = await api.post(
        f"{INSTALLATIONS}/{created['id']}/upgrade", json={"version": "1.0.1"}, headers=people.owner.headers
    )
    assert (upgraded.json()["status"], upgraded.json()["version"]) == ("active", "1.0.1")


async def test_replacing_secrets_is_all_or_nothing(api: httpx.AsyncClient, people: People) -> None:
    slug = await publish(api, people)
    created = await install(api, people, slug)
    url = f"{INSTALLATIONS}/{created['id']}/secrets"
    before = created["secrets"][0]
    bad = await api.put(url, json={"secrets": {"unknown": "x"}}, headers=people.owner.headers)
    assert bad.status_code == 422
    same = (await api.get(f"{INSTALLATIONS}/{created['id']}", headers=people.owner.headers)).json()["secrets"][0]
    assert same == before
    replaced = await api.put(url, json={"secrets": {"api_key": "sk-live-new-value"}}, headers=people.owner.headers)
    assert replaced.status_code == 200
    after = replaced.json()["secrets"][0]
    assert after["field"] == "api_key"
    assert after["fingerprint"] != before["fingerprint"]


async def test_nothing_is_found_for_random_ids(api: httpx.AsyncClient, people: People) -> None:
    response = await api.get(f"{INSTALLATIONS}/{uuid.uuid4()}", headers=people.owner.headers)
    assert response.status_code == 404
    assert (await api.get(f"{INSTALLATIONS}/{uuid.uuid4()}")).status_code == 401


async def test_the_catalog_counts_installs_and_verifies_reviews_of_installers(
    api: httpx.AsyncClient, people: People
) -> None:
    slug = await publish(api, people)
    review = {"rating": 5, "title": "Great", "body": ""}
    early = await api.post(f"/api/v1/cats/{slug}/reviews", json=review, headers=people.stranger.headers)
    assert early.json()["verified"] is False
    created = await install(api, people, slug)
    await wait_for_status(api, people.owner, created["id"], "active")
    await install(api, people, slug, name="Second")
    cat: dict[str, Any] = {}
    for _ in range(100):
        cat = (await api.get(f"/api/v1/cats/{slug}")).json()
        if cat["install_count"] == 2:
            break
        await asyncio.sleep(0.05)
    assert (cat["install_count"], cat["active_install_count"]) == (2, 2)
    verified = await api.post(f"/api/v1/cats/{slug}/reviews", json=review, headers=people.owner.headers)
    assert verified.json()["verified"] is True
    await api.delete(f"{INSTALLATIONS}/{created['id']}", headers=people.owner.headers)
    await wait_for_status(api, people.owner, created["id"], "uninstalled")
    for _ in range(100):
        cat = (await api.get(f"/api/v1/cats/{slug}")).json()
        if cat["active_install_count"] == 1:
            break
        await asyncio.sleep(0.05)
    assert (cat["install_count"], cat["active_install_count"]) == (2, 1)

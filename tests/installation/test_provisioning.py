"""Provisioning webhooks end to end: a real HTTP server stands in for the cat and checks signatures."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from cathouse import webhooks
from tests.installation.conftest import FakeCat, People, install_body, publish, wait_for_status
from tests.support import free_port

INSTALLATIONS = "/api/v1/installations"


async def secrets_of(api: httpx.AsyncClient, people: People, slug: str) -> list[str]:
    response = await api.get(f"/api/v1/cats/{slug}/webhook-secrets", headers=people.publisher.headers)
    assert response.status_code == 200, response.text
    return [s["secret"] for s in response.json()]


async def deliveries(api: httpx.AsyncClient, people: People, installation_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"{INSTALLATIONS}/{installation_id}/deliveries", headers=people.owner.headers)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def test_the_cat_receives_a_signed_install_and_the_installation_becomes_active(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    active = await wait_for_status(api, people.owner, created["id"], "active")
    assert active["activated_at"]
    [(headers, body)] = fake_cat.received
    webhooks.verify(await secrets_of(api, people, slug), headers, body)  # raises if the signature is wrong
    message = json.loads(body)
    assert message["type"] == "installation.provisioned"
    assert message["data"]["installation_id"] == created["id"]
    assert message["data"]["permissions"] == ["points:read", "points:write"]
    assert message["data"]["settings"] == {"team": "blue"}
    assert "sk-live" not in body.decode()  # secrets reach the cat only inside proxied calls
    [delivery] = await deliveries(api, people, created["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == ("succeeded", 1, 200)
    assert delivery["webhook_id"] == headers["webhook-id"]
    assert delivery["response_excerpt"] == '{"ok":true}'
    assert delivery["last_latency_ms"] >= 0


async def test_a_cat_that_keeps_failing_leaves_the_installation_failed_and_retry_recovers(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    fake_cat.status = 503
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    failed = await wait_for_status(api, people.owner, created["id"], "failed")
    assert "3 attempts" in failed["status_reason"]
    assert "503" in failed["status_reason"]
    [delivery] = await deliveries(api, people, created["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == ("failed", 3, 503)
    one = await api.get(f"{INSTALLATIONS}/{created['id']}/deliveries/{delivery['id']}", headers=people.owner.headers)
    assert [a["status"] for a in one.json()["history"]] == [503, 503, 503]
    # All retries of one delivery carry the same webhook-id, so the cat can drop duplicates.
    assert len({h["webhook-id"] for h, _ in fake_cat.received}) == 1
    fake_cat.status = 200
    retried = await api.post(f"{INSTALLATIONS}/{created['id']}/retry", headers=people.owner.headers)
    assert retried.json()["status"] == "provisioning"
    await wait_for_status(api, people.owner, created["id"], "active")


async def test_with_the_cat_down_attempts_are_recorded_and_the_install_fails(
    api: httpx.AsyncClient, people: People
) -> None:
    slug = await publish(api, people, webhook_url=f"http://127.0.0.1:{free_port()}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    failed = await wait_for_status(api, people.owner, created["id"], "failed")
    assert "no answer" in failed["status_reason"] or "Connect" in failed["status_reason"]
    [delivery] = await deliveries(api, people, created["id"])
    assert delivery["attempts"] == 3
    assert delivery["last_status"] is None
    assert delivery["last_error"]


async def test_suspend_resume_and_uninstall_tell_the_cat(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    base = f"{INSTALLATIONS}/{created['id']}"
    await wait_for_status(api, people.owner, created["id"], "active")
    await api.post(f"{base}/suspend", json={"reason": "holiday"}, headers=people.owner.headers)
    await api.post(f"{base}/resume", headers=people.owner.headers)
    await api.put(
        f"{base}/permissions",
        json={"permissions": ["points:read", "points:write", "points:export"]},
        headers=people.owner.headers,
    )
    await api.delete(base, headers=people.owner.headers)
    await wait_for_status(api, people.owner, created["id"], "uninstalled")
    types = [json.loads(body)["type"] for _, body in fake_cat.received]
    assert types == [
        "installation.provisioned",
        "installation.suspended",
        "installation.resumed",
        "installation.permissions_changed",
        "installation.uninstalled",
    ]
    changed = json.loads(fake_cat.received[3][1])["data"]
    assert (changed["granted"], changed["revoked"]) == (["points:export"], [])


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    [old] = await secrets_of(api, people, slug)
    rotated = await api.post(
        f"/api/v1/cats/{slug}/webhook-secrets/rotate", json={"overlap_hours": 1}, headers=people.publisher.headers
    )
    assert rotated.status_code == 200, rotated.text
    both = [s["secret"] for s in rotated.json()]
    assert len(both) == 2
    assert old in both
    new = next(s for s in both if s != old)
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    await wait_for_status(api, people.owner, created["id"], "active")
    [(headers, body)] = fake_cat.received
    assert len(headers["webhook-signature"].split()) == 2
    webhooks.verify(old, headers, body)
    webhooks.verify(new, headers, body)
    others = await api.get(f"/api/v1/cats/{slug}/webhook-secrets", headers=people.stranger.headers)
    assert others.status_code == 403


async def test_the_owner_and_the_publisher_see_deliveries_and_ask_for_a_redelivery(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    await wait_for_status(api, people.owner, created["id"], "active")
    of_cat = await api.get(f"{INSTALLATIONS}/deliveries", params={"cat": slug}, headers=people.publisher.headers)
    assert [d["installation_id"] for d in of_cat.json()] == [created["id"]]
    refused = await api.get(f"{INSTALLATIONS}/deliveries", params={"cat": slug}, headers=people.stranger.headers)
    assert refused.status_code == 404
    [delivery] = await deliveries(api, people, created["id"])
    again = await api.post(
        f"{INSTALLATIONS}/{created['id']}/deliveries/{delivery['id']}/redeliver", headers=people.publisher.headers
    )
    assert again.status_code == 202
    assert again.json()["id"] != delivery["id"]
    for _ in range(100):
        if len(fake_cat.received) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(fake_cat.received) == 2
    assert fake_cat.received[0][1] == fake_cat.received[1][1]  # the same message, a new webhook-id
    assert fake_cat.received[0][0]["webhook-id"] != fake_cat.received[1][0]["webhook-id"]

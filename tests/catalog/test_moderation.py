"""The life of a cat: draft, review, published, rejected, suspended, delisted; and its events."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.catalog.conftest import People, cat_body, draft, published


async def events(engine: AsyncEngine, slug: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_type FROM events.outbox WHERE payload->>'slug' = :slug ORDER BY seq"), {"slug": slug}
        )
        return [r[0] for r in rows]


async def test_a_cat_is_public_once_an_admin_approves_it(
    api: httpx.AsyncClient, people: People, committed: AsyncEngine
) -> None:
    cat = await draft(api, people.developer)
    slug = cat["slug"]
    submitted = await api.post(f"/api/v1/cats/{slug}/submit", headers=people.developer.headers)
    assert submitted.json()["status"] == "pending_review"
    assert (await api.get(f"/api/v1/cats/{slug}")).status_code == 404
    not_admin = await api.post(f"/api/v1/cats/{slug}/approve", headers=people.developer.headers)
    assert not_admin.status_code == 403
    approved = await api.post(f"/api/v1/cats/{slug}/approve", headers=people.admin.headers)
    assert approved.status_code == 200
    public = await api.get(f"/api/v1/cats/{slug}")
    assert public.status_code == 200
    assert (public.json()["status"], public.json()["current_version"]) == ("published", "1.0.0")
    assert await events(committed, slug) == ["cat.submitted", "cat.published"]


async def test_the_review_queue_lists_submitted_cats_to_admins_only(api: httpx.AsyncClient, people: People) -> None:
    waiting, drafted = await draft(api, people.developer), await draft(api, people.developer)
    await api.post(f"/api/v1/cats/{waiting['slug']}/submit", headers=people.developer.headers)
    queue = await api.get("/api/v1/cats/review-queue", params={"limit": 100}, headers=people.admin.headers)
    assert queue.status_code == 200
    listed = {c["slug"]: c["status"] for c in queue.json()["items"]}
    assert listed[waiting["slug"]] == "pending_review"
    assert drafted["slug"] not in listed
    assert {c["status"] for c in queue.json()["items"]} == {"pending_review"}
    refused = await api.get("/api/v1/cats/review-queue", headers=people.developer.headers)
    assert refused.status_code == 403


async def test_a_rejected_cat_goes_back_with_the_reason_and_can_be_resubmitted(
    api: httpx.AsyncClient, people: People
) -> None:
    cat = await draft(api, people.developer)
    slug = cat["slug"]
    await api.post(f"/api/v1/cats/{slug}/submit", headers=people.developer.headers)
    rejected = await api.post(
        f"/api/v1/cats/{slug}/reject", json={"reason": "The icon is missing."}, headers=people.admin.headers
    )
    assert rejected.status_code == 200
    own = (await api.get(f"/api/v1/cats/{slug}", headers=people.developer.headers)).json()
    assert (own["status"], own["moderation_reason"]) == ("rejected", "The icon is missing.")
    again = await api.post(f"/api/v1/cats/{slug}/submit", headers=people.developer.headers)
    assert again.json()["status"] == "pending_review"
    assert again.json()["moderation_reason"] is None


async def test_an_illegal_transition_is_a_conflict_naming_the_state(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    slug = cat["slug"]
    response = await api.post(f"/api/v1/cats/{slug}/approve", headers=people.admin.headers)
    assert response.status_code == 409
    assert response.json()["current_status"] == "draft"
    assert "draft" in response.json()["detail"]
    suspend = await api.post(f"/api/v1/cats/{slug}/suspend", json={"reason": "x"}, headers=people.admin.headers)
    assert suspend.status_code == 409
    reinstate = await api.post(f"/api/v1/cats/{slug}/reinstate", headers=people.admin.headers)
    assert reinstate.status_code == 409


async def test_a_cat_without_a_version_cannot_be_submitted(api: httpx.AsyncClient, people: People) -> None:
    created = await api.post("/api/v1/cats", json=cat_body(), headers=people.developer.headers)
    slug = created.json()["slug"]
    response = await api.post(f"/api/v1/cats/{slug}/submit", headers=people.developer.headers)
    assert response.status_code == 409
    assert "version" in response.json()["detail"]


async def test_suspended_and_delisted_cats_leave_the_catalog_and_can_return(
    api: httpx.AsyncClient, people: People, committed: AsyncEngine
) -> None:
    cat = await published(api, people)
    slug = cat["slug"]
    reason = {"reason": "Reported for abuse."}
    suspended = await api.post(f"/api/v1/cats/{slug}/suspend", json=reason, headers=people.admin.headers)
    assert suspended.json()["status"] == "suspended"
    assert (await api.get(f"/api/v1/cats/{slug}")).status_code == 404
    assert slug not in [c["slug"] for c in (await api.get("/api/v1/cats")).json()["items"]]
    # Its publisher still sees it, and why.
    own = (await api.get(f"/api/v1/cats/{slug}", headers=people.developer.headers)).json()
    assert own["moderation_reason"] == "Reported for abuse."
    reinstated = await api.post(f"/api/v1/cats/{slug}/reinstate", headers=people.admin.headers)
    assert reinstated.json()["status"] == "published"
    delisted = await api.post(f"/api/v1/cats/{slug}/delist", json=reason, headers=people.admin.headers)
    assert delisted.json()["status"] == "delisted"
    assert (await api.get(f"/api/v1/cats/{slug}")).status_code == 404
    assert await events(committed, slug) == [
        "cat.submitted",
        "cat.published",
        "cat.suspended",
        "cat.reinstated",
        "cat.delisted",
    ]


async def test_changes_others_can_see_write_events(
    api: httpx.AsyncClient, people: People, committed: AsyncEngine
) -> None:
    hidden = await draft(api, people.developer)
    await api.patch(f"/api/v1/cats/{hidden['slug']}", json={"name": "Renamed"}, headers=people.developer.headers)
    assert await events(committed, hidden["slug"]) == []
    cat = await published(api, people)
    slug = cat["slug"]
    await api.patch(f"/api/v1/cats/{slug}", json={"name": "Renamed"}, headers=people.developer.headers)
    await api.patch(f"/api/v1/cats/{slug}", json={"name": "Renamed"}, headers=people.developer.headers)
    assert (await events(committed, slug))[-1:] == ["cat.updated"]
    assert (await events(committed, slug)).count("cat.updated") == 1  # an edit that changes nothing is silent
    async with committed.connect() as conn:
        payload = await conn.scalar(
            text("SELECT payload FROM events.outbox WHERE event_type = 'cat.published' AND payload->>'slug' = :s"),
            {"s": slug},
        )
    assert payload["version"] == "1.0.0"
    assert payload["publisher_id"] == people.developer.id


async def test_a_rejection_needs_a_reason(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    await api.post(f"/api/v1/cats/{cat['slug']}/submit", headers=people.developer.headers)
    response = await api.post(f"/api/v1/cats/{cat['slug']}/reject", json={"reason": " "}, headers=people.admin.headers)
    assert response.status_code == 422
    own = (await api.get(f"/api/v1/cats/{cat['slug']}", headers=people.developer.headers)).json()
    assert own["status"] == "pending_review"


async def test_a_reviewed_cat_can_be_suspended_and_reinstated(api: httpx.AsyncClient, people: People) -> None:
    # Its computed rating was read after the update's flush, lazily, and answered 500.
    cat = await published(api, people)
    slug = cat["slug"]
    review = {"rating": 4, "title": "Good", "body": "Works."}
    posted = await api.post(f"/api/v1/cats/{slug}/reviews", json=review, headers=people.user.headers)
    assert posted.status_code == 201, posted.text
    suspended = await api.post(f"/api/v1/cats/{slug}/suspend", json={"reason": "Down."}, headers=people.admin.headers)
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["rating"]["average"] == 4
    reinstated = await api.post(f"/api/v1/cats/{slug}/reinstate", headers=people.admin.headers)
    assert reinstated.status_code == 200, reinstated.text
    edited = await api.patch(f"/api/v1/cats/{slug}", json={"summary": "Better."}, headers=people.developer.headers)
    assert (edited.status_code, edited.json()["rating"]["count"]) == (200, 1)

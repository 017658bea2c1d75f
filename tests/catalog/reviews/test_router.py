"""Reviews over HTTP: one per user, replies, moderation, and ratings that are exact at all times."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.auth.conftest import Account, signed_up
from tests.catalog.conftest import People, published

REVIEW = {"rating": 4, "title": "Solid ledger", "body": "Balances are always right.\n\nSetup took minutes."}


def reviews_of(slug: str) -> str:
    return f"/api/v1/cats/{slug}/reviews"


async def rating(api: httpx.AsyncClient, slug: str) -> dict[str, Any]:
    body: dict[str, Any] = (await api.get(f"/api/v1/cats/{slug}")).json()["rating"]
    return body


async def recounted(engine: AsyncEngine, slug: str) -> dict[str, Any]:
    """The figures recomputed from the visible reviews, as the cat should show them."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT r.rating FROM catalog.reviews r JOIN catalog.cats c ON c.id = r.cat_id "
                    "WHERE c.slug = :slug AND r.status = 'visible'"
                ),
                {"slug": slug},
            )
        ).all()
    stars = [r[0] for r in rows]
    return {
        "count": len(stars),
        "average": round(sum(stars) / len(stars), 2) if stars else None,
        "histogram": {str(n): stars.count(n) for n in range(1, 6)},
    }


@pytest.fixture
async def cat(api: httpx.AsyncClient, people: People) -> dict[str, Any]:
    return await published(api, people)


async def test_a_user_reviews_a_cat_once(api: httpx.AsyncClient, people: People, cat: dict[str, Any]) -> None:
    created = await api.post(reviews_of(cat["slug"]), json=REVIEW, headers=people.user.headers)
    assert created.status_code == 201, created.text
    review = created.json()
    assert (review["rating"], review["title"], review["verified"]) == (4, "Solid ledger", False)
    assert review["author"] == {"id": people.user.id, "display_name": "Ana"}
    again = await api.post(reviews_of(cat["slug"]), json={**REVIEW, "rating": 1}, headers=people.user.headers)
    assert again.status_code == 409
    assert await rating(api, cat["slug"]) == {
        "count": 1,
        "average": 4.0,
        "histogram": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0},
    }
    listed = (await api.get(reviews_of(cat["slug"]))).json()
    assert [r["id"] for r in listed["items"]] == [review["id"]]
    mine = await api.get(f"{reviews_of(cat['slug'])}/mine", headers=people.user.headers)
    assert mine.json()["id"] == review["id"]


async def test_publishers_cannot_review_their_own_cat(
    api: httpx.AsyncClient, people: People, cat: dict[str, Any]
) -> None:
    response = await api.post(reviews_of(cat["slug"]), json=REVIEW, headers=people.developer.headers)
    assert response.status_code == 403
    assert (await api.post(reviews_of(cat["slug"]), json=REVIEW)).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {**REVIEW, "rating": 0},
        {**REVIEW, "rating": 6},
        {**REVIEW, "rating": 4.5},
        {**REVIEW, "title": ""},
        {**REVIEW, "title": "x" * 121},
        {**REVIEW, "body": "x" * 5001},
        {**REVIEW, "verified": True},
        {"title": "No stars"},
    ],
)
async def test_bad_reviews_are_refused_and_change_nothing(
    api: httpx.AsyncClient, people: People, cat: dict[str, Any], body: dict[str, Any]
) -> None:
    response = await api.post(reviews_of(cat["slug"]), json=body, headers=people.user.headers)
    assert response.status_code == 422
    assert (await rating(api, cat["slug"]))["count"] == 0


async def test_editing_and_deleting_keep_the_figures_exact(
    api: httpx.AsyncClient, people: People, cat: dict[str, Any], committed: AsyncEngine
) -> None:
    slug = cat["slug"]
    review = (await api.post(reviews_of(slug), json=REVIEW, headers=people.user.headers)).json()
    edited = await api.patch(f"{reviews_of(slug)}/{review['id']}", json={"rating": 2}, headers=people.user.headers)
    assert edited.status_code == 200
    assert edited.json()["title"] == REVIEW["title"]
    assert await rating(api, slug) == await recounted(committed, slug)
    assert (await rating(api, slug))["histogram"]["2"] == 1
    others = await api.patch(f"{reviews_of(slug)}/{review['id']}", json={"rating": 5}, headers=people.admin.headers)
    assert others.status_code == 403
    deleted = await api.delete(f"{reviews_of(slug)}/{review['id']}", headers=people.user.headers)
    assert deleted.status_code == 204
    assert await rating(api, slug) == {"count": 0, "average": None, "histogram": dict.fromkeys("12345", 0)}


async def test_the_publisher_replies_once_in_public(
    api: httpx.AsyncClient, people: People, cat: dict[str, Any]
) -> None:
    slug = cat["slug"]
    review = (await api.post(reviews_of(slug), json=REVIEW, headers=people.user.headers)).json()
    url = f"{reviews_of(slug)}/{review['id']}/reply"
    assert (await api.put(url, json={"body": "Thanks!"}, headers=people.other_developer.headers)).status_code == 403
    assert (await api.put(url, json={"body": "Thanks!"}, headers=people.user.headers)).status_code == 403
    replied = await api.put(url, json={"body": "Thanks!"}, headers=people.developer.headers)
    assert replied.status_code == 200
    await api.put(url, json={"body": "Thanks, fixed in 1.1."}, headers=people.developer.headers)
    public = (await api.get(reviews_of(slug))).json()["items"][0]
    assert public["reply"]["body"] == "Thanks, fixed in 1.1."
    withdrawn = await api.delete(url, headers=people.developer.headers)
    assert withdrawn.json()["reply"] is None


async def test_admins_hide_abusive_reviews_and_they_stop_counting(
    api: httpx.AsyncClient, people: People, cat: dict[str, Any], committed: AsyncEngine
) -> None:
    slug = cat["slug"]
    review = (await api.post(reviews_of(slug), json={**REVIEW, "rating": 1}, headers=people.user.headers)).json()
    url = f"{reviews_of(slug)}/{review['id']}"
    refused = await api.post(f"{url}/hide", json={"reason": "Abuse"}, headers=people.developer.headers)
    assert refused.status_code == 403
    hidden = await api.post(f"{url}/hide", json={"reason": "Abuse"}, headers=people.admin.headers)
    assert hidden.status_code == 200
    assert hidden.json()["hidden_reason"] == "Abuse"
    assert (await rating(api, slug))["count"] == 0
    assert (await api.get(reviews_of(slug))).json()["items"] == []
    assert len((await api.get(reviews_of(slug), headers=people.admin.headers)).json()["items"]) == 1
    # Its author cannot edit it back into view, nor review again.
    assert (await api.patch(url, json={"rating": 5}, headers=people.user.headers)).status_code == 404
    assert (await api.post(reviews_of(slug), json=REVIEW, headers=people.user.headers)).status_code == 409
    again = await api.post(f"{url}/hide", json={"reason": "Abuse"}, headers=people.admin.headers)
    assert again.status_code == 409
    restored = await api.post(f"{url}/restore", headers=people.admin.headers)
    assert restored.json()["status"] == "visible"
    assert await rating(api, slug) == await recounted(committed, slug)
    async with committed.connect() as conn:
        query = "SELECT event_type FROM events.outbox WHERE event_type LIKE 'review.%' ORDER BY seq"
        kinds = (await conn.execute(text(query))).all()
    assert [k[0] for k in kinds] == ["review.created", "review.hidden", "review.restored"]


async def test_reviews_page_newest_first_and_filter_by_stars(
    api: httpx.AsyncClient, people: People, cat: dict[str, Any], committed: AsyncEngine
) -> None:
    slug = cat["slug"]
    authors: list[Account] = [people.user, people.other_developer, people.admin]
    for stars, author in zip((5, 3, 5), authors, strict=True):
        await api.post(reviews_of(slug), json={**REVIEW, "rating": stars}, headers=author.headers)
    first = (await api.get(reviews_of(slug), params={"limit": 2})).json()
    second = (await api.get(reviews_of(slug), params={"limit": 2, "cursor": first["next_cursor"]})).json()
    ids = [r["author"]["id"] for r in first["items"] + second["items"]]
    assert ids == [a.id for a in reversed(authors)]
    assert second["next_cursor"] is None
    fives = (await api.get(reviews_of(slug), params={"rating": 5})).json()["items"]
    assert len(fives) == 2


async def test_no_review_of_a_cat_nobody_may_see(api: httpx.AsyncClient, people: People) -> None:
    response = await api.post(reviews_of("no-such-cat"), json=REVIEW, headers=people.user.headers)
    assert response.status_code == 404


async def test_concurrent_reviews_keep_the_figures_exact(
    api: httpx.AsyncClient, people: People, cat: dict[str, Any], committed: AsyncEngine
) -> None:
    slug = cat["slug"]
    reviewers = [await signed_up(api) for _ in range(12)]

    async def life(i: int, account: Account) -> None:
        created = await api.post(reviews_of(slug), json={**REVIEW, "rating": 1 + i % 5}, headers=account.headers)
        assert created.status_code == 201, created.text
        review_id = created.json()["id"]
        await api.patch(f"{reviews_of(slug)}/{review_id}", json={"rating": 5 - i % 5}, headers=account.headers)
        if i % 3 == 0:
            await api.delete(f"{reviews_of(slug)}/{review_id}", headers=account.headers)

    await asyncio.gather(*(life(i, a) for i, a in enumerate(reviewers)))
    assert await rating(api, slug) == await recounted(committed, slug)
    assert (await rating(api, slug))["count"] == 8

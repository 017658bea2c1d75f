"""The feeds and statistics, from real actions through the other services' APIs, as users see them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from cathouse.platform.db import sessionmaker
from cathouse.proxy.audit import AuditRecord, append
from tests.activity.conftest import Platform, install
from tests.catalog.conftest import cat_body
from tests.installation.conftest import People, publish, version, wait_for_status


async def feed(
    api: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None, **params: Any
) -> list[dict[str, Any]]:
    response = await api.get(f"/api/v1/activity{path}", headers=headers or {}, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def types(items: list[dict[str, Any]]) -> list[str]:
    return [i["type"] for i in items]


async def review(api: httpx.AsyncClient, slug: str, headers: dict[str, str], rating: int) -> str:
    created = await api.post(f"/api/v1/cats/{slug}/reviews", json={"rating": rating, "title": "Fine"}, headers=headers)
    assert created.status_code == 201, created.text
    review_id: str = created.json()["id"]
    return review_id


async def test_real_actions_reach_each_feed_with_the_right_visibility(live: Platform, people: People) -> None:
    api = live.api
    slug = await publish(api, people)
    installation = await install(api, people, slug, name="Team Blue")
    await wait_for_status(api, people.owner, installation, "active")
    await review(api, slug, people.owner.headers, 5)
    await live.settle()

    public = await feed(api, "")  # no one signed in
    assert types(public) == ["review.created", "installation.created", "cat.published"]
    reviewed, installed, published = public
    assert published["cat"]["slug"] == slug
    assert published["cat"]["name"] == "Points Ledger"
    assert published["user"]["id"] == people.publisher.id
    assert reviewed["user"] == {"id": people.owner.id, "display_name": "Ana"}
    assert reviewed["data"]["rating"] == 5
    # Someone installed it: who, and what they named it, is theirs to know.
    assert installed["user"] is None
    assert "name" not in installed["data"]
    assert "installation_id" not in installed["data"]
    assert installed["data"]["version"] == "1.0.0"

    assert types(await feed(api, f"/cats/{slug}")) == types(public)

    mine = await feed(api, "/me", people.owner.headers)
    assert types(mine)[0] == "review.created"
    assert types(mine)[-1] == "installation.created"
    assert set(types(mine)) == {"review.created", "installation.status_changed", "installation.created"}
    own_install = next(i for i in mine if i["type"] == "installation.created")
    assert own_install["user"]["id"] == people.owner.id
    assert own_install["data"]["name"] == "Team Blue"
    assert own_install["data"]["installation_id"] == installation
    activated = next(i for i in mine if i["type"] == "installation.status_changed")
    assert activated["data"]["to"] == "active"
    # The owner sees their own install in the public feed with its details, others do not.
    as_owner = await feed(api, "", people.owner.headers)
    assert next(i for i in as_owner if i["type"] == "installation.created")["data"]["name"] == "Team Blue"

    assert await feed(api, "/me", people.stranger.headers) == []
    publisher = types(await feed(api, "/me", people.publisher.headers))
    assert publisher == ["review.created", "cat.published", "cat.submitted"]

    refused = await api.get("/api/v1/activity", params={"everyone": "true"}, headers=people.stranger.headers)
    assert refused.status_code == 403
    everything = types(await feed(api, "", people.admin.headers, everyone="true"))
    assert "cat.submitted" in everything
    assert "installation.status_changed" in everything


async def test_the_me_feed_needs_a_caller(live: Platform) -> None:
    assert (await live.api.get("/api/v1/activity/me")).status_code == 401


async def test_a_cat_only_its_publisher_can_see_has_no_public_feed(live: Platform, people: People) -> None:
    api = live.api
    created = await api.post("/api/v1/cats", json=cat_body(), headers=people.publisher.headers)
    assert created.status_code == 201, created.text
    slug = created.json()["slug"]
    assert (await api.get(f"/api/v1/activity/cats/{slug}")).status_code == 404
    assert (await api.get(f"/api/v1/activity/cats/{slug}", headers=people.publisher.headers)).status_code == 200
    assert (await api.get("/api/v1/activity/cats/no-such-cat")).status_code == 404


async def test_statistics_are_exact_after_installs_uninstalls_and_reviews(live: Platform, people: People) -> None:
    api = live.api
    slug = await publish(api, people)
    first = await install(api, people, slug, name="First")
    second = await install(api, people, slug, name="Second")
    await wait_for_status(api, people.owner, first, "active")
    await wait_for_status(api, people.owner, second, "active")
    gone = await api.delete(f"/api/v1/installations/{second}", headers=people.owner.headers)
    assert gone.status_code == 200, gone.text
    await review(api, slug, people.owner.headers, 5)
    hidden = await review(api, slug, people.stranger.headers, 2)
    await review(api, slug, people.admin.headers, 4)
    moderated = await api.post(
        f"/api/v1/cats/{slug}/reviews/{hidden}/hide", json={"reason": "off topic"}, headers=people.admin.headers
    )
    assert moderated.status_code == 200, moderated.text
    cat_id = (await api.get(f"/api/v1/cats/{slug}")).json()["id"]
    await _proxy_calls(live, uuid.UUID(cat_id), allowed=3, refused=1)
    await live.settle()

    stats = (await api.get(f"/api/v1/activity/cats/{slug}/stats")).json()
    assert stats["installs"] == {"active": 1, "total": 2}
    assert stats["rating"] == {"count": 2, "average": 4.5, "histogram": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}}
    assert len(stats["proxy_calls"]) == 30
    today = stats["proxy_calls"][-1]
    assert today == {"day": datetime.now(UTC).date().isoformat(), "calls": 4, "allowed": 3}
    assert all(d["calls"] == 0 for d in stats["proxy_calls"][:-1])
    # The catalog counts the same.
    rating = (await api.get(f"/api/v1/cats/{slug}")).json()["rating"]
    assert (rating["count"], rating["average"]) == (2, 4.5)

    platform = (await api.get("/api/v1/activity/stats")).json()
    assert platform["cats_published"] == 1
    assert platform["installations"] == {"active": 1, "total": 2}
    assert platform["reviews"] == 2
    assert platform["events_applied"] > 10


async def _proxy_calls(live: Platform, cat_id: uuid.UUID, *, allowed: int, refused: int) -> None:
    decisions = ["allowed"] * allowed + ["no_permission"] * refused
    records = [
        AuditRecord(
            at=datetime.now(UTC),
            request_id=uuid.uuid4().hex,
            method="GET",
            path="/",
            decision=d,
            status=200,
            cat_id=cat_id,
        )
        for d in decisions
    ]
    async with sessionmaker(live.engine)() as session, session.begin():
        await append(session, records)


async def test_pages_follow_one_another_without_overlap_or_gap(live: Platform, people: People) -> None:
    api = live.api
    slug = await publish(api, people)
    for patch in range(1, 8):
        label = f"1.0.{patch}"
        added = await api.post(
            f"/api/v1/cats/{slug}/versions", json=version(version=label), headers=people.publisher.headers
        )
        assert added.status_code == 201, added.text
        done = await api.post(f"/api/v1/cats/{slug}/versions/{label}/publish", headers=people.publisher.headers)
        assert done.status_code == 200, done.text
    await live.settle()

    whole = await feed(api, f"/cats/{slug}", limit=100)
    assert len(whole) == 8
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = (await api.get(f"/api/v1/activity/cats/{slug}", params=params)).json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [i["id"] for p in pages for i in p] == [i["id"] for i in whole]
    assert [i["data"].get("version") for i in whole[:2]] == ["1.0.7", "1.0.6"]

    bad = await api.get("/api/v1/activity", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422


async def test_lag_is_a_metric(live: Platform) -> None:
    await live.settle()
    text = (await live.api.get("/metrics")).text
    assert "cathouse_activity_lag_events" in text
    assert "cathouse_activity_lag_seconds" in text

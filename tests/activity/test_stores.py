"""Both stores behind the one interface: applied once, counted exactly, paged without gaps, capped
(Redis), and closed to the live consumer during a rebuild."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cathouse.activity.readmodel import Entry, Feed, ReadModel, Rebuilding
from cathouse.activity.stores import RedisReadModel
from cathouse.contracts.events import auth as users
from cathouse.contracts.events import catalog as cats
from cathouse.contracts.events import installation as installs
from cathouse.platform.outbox.relay import Event
from tests.activity.conftest import REDIS_URL, drop_keys, event, redis_prefix

CAT, PUBLISHER, OWNER, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def published(cat: uuid.UUID = CAT, slug: str = "points") -> Event:
    return event(
        cats.CatPublished.type,
        cat,
        cat_id=cat,
        slug=slug,
        name="Points",
        category="points",
        publisher_id=PUBLISHER,
        version="1.0.0",
    )


def installed(installation: uuid.UUID, owner: uuid.UUID = OWNER, cat: uuid.UUID = CAT) -> Event:
    return event(
        installs.InstallationCreated.type,
        installation,
        installation_id=installation,
        user_id=owner,
        cat_id=cat,
        version="1.0.0",
        name="Main",
        permissions=["points:read"],
    )


def moved(installation: uuid.UUID, before: str, after: str, owner: uuid.UUID = OWNER) -> Event:
    transition: dict[str, Any] = {"from": before, "to": after, "reason": None, "by": None}
    return event(
        installs.InstallationStatusChanged.type,
        installation,
        installation_id=installation,
        user_id=owner,
        cat_id=CAT,
        version="1.0.0",
        **transition,
    )


def reviewed(review: uuid.UUID, author: uuid.UUID, rating: int) -> Event:
    return event(
        cats.ReviewCreated.type,
        CAT,
        cat_id=CAT,
        slug="points",
        review_id=review,
        user_id=author,
        rating=rating,
        verified=True,
    )


async def everything(model: ReadModel, feed: Feed) -> list[Entry]:
    return await model.page(feed, before=None, limit=10_000)


async def snapshot(model: ReadModel) -> dict[str, Any]:
    feeds = [Feed.everything(), Feed.public(), Feed.cat(CAT), Feed.user(OWNER), Feed.user(PUBLISHER)]
    return {
        "feeds": [[e.content() for e in await everything(model, f)] for f in feeds],
        "ids": [e.id for e in await everything(model, Feed.everything())],
        "cat": await model.cat_counters(CAT),
        "platform": await model.platform_counters(),
    }


async def test_an_event_delivered_again_changes_nothing(store: ReadModel) -> None:
    review, installation = uuid.uuid4(), uuid.uuid4()
    story = [published(), installed(installation), moved(installation, "pending", "active"), reviewed(review, OWNER, 4)]
    first = await store.apply(story)
    assert [o.status for o in first] == ["applied"] * 4
    before = await snapshot(store)

    again = await store.apply(story)  # a relay that died before marking them published
    for one in story:
        again += await store.apply([one])

    assert {o.status for o in again} == {"duplicate"}
    assert await snapshot(store) == before
    assert before["platform"]["events_applied"] == 4


async def test_statistics_follow_installs_uninstalls_and_reviews(store: ReadModel) -> None:
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    kept, edited, hidden, deleted = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await store.apply(
        [
            published(),
            installed(first),
            moved(first, "pending", "active"),
            installed(second, OTHER),
            moved(second, "pending", "provisioning"),
            moved(second, "provisioning", "active"),
            moved(second, "active", "suspended"),
            moved(second, "suspended", "active"),
            installed(third),  # never provisioned: not counted
            moved(first, "active", "uninstalling"),
            moved(first, "uninstalling", "uninstalled"),
            reviewed(kept, OWNER, 5),
            reviewed(edited, OTHER, 2),
            event(
                cats.ReviewUpdated.type,
                CAT,
                cat_id=CAT,
                slug="points",
                review_id=edited,
                user_id=OTHER,
                rating=4,
                previous_rating=2,
            ),
            reviewed(hidden, uuid.uuid4(), 1),
            event(
                cats.ReviewHidden.type,
                CAT,
                cat_id=CAT,
                slug="points",
                review_id=hidden,
                reason="spam",
                by=str(PUBLISHER),
            ),
            reviewed(deleted, uuid.uuid4(), 3),
            event(cats.ReviewDeleted.type, CAT, cat_id=CAT, slug="points", review_id=deleted, user_id=OTHER, rating=3),
        ]
    )

    counters = await store.cat_counters(CAT)
    assert counters["installs_total"] == 2
    assert counters["installs_active"] == 1
    assert counters["rating_count"] == 2
    assert counters["rating_sum"] == 9
    assert [counters[f"rating_{n}"] for n in range(1, 6)] == [0, 0, 0, 1, 1]
    platform = await store.platform_counters()
    assert platform["cats_published"] == 1
    assert (platform["installations_active"], platform["installations_total"]) == (1, 2)
    assert platform["reviews"] == 2

    await store.apply(
        [
            event(cats.ReviewRestored.type, CAT, cat_id=CAT, slug="points", review_id=hidden, by=str(PUBLISHER)),
            event(cats.CatSuspended.type, CAT, cat_id=CAT, slug="points", reason="broken", by=str(PUBLISHER)),
        ]
    )
    counters = await store.cat_counters(CAT)
    assert (counters["rating_count"], counters["rating_1"]) == (3, 1)
    assert (await store.platform_counters())["cats_published"] == 0


async def test_feeds_show_public_entries_to_all_and_the_rest_to_its_people(store: ReadModel) -> None:
    installation = uuid.uuid4()
    await store.apply(
        [
            event(cats.CatSubmitted.type, CAT, cat_id=CAT, slug="points", publisher_id=PUBLISHER),
            published(),
            installed(installation),
            moved(installation, "pending", "active"),
            event(users.UserRegistered.type, OTHER, user_id=OTHER, display_name="Other"),
        ]
    )

    public = [e.type for e in await everything(store, Feed.public())]
    assert public == [installs.InstallationCreated.type, cats.CatPublished.type]
    assert [e.type for e in await everything(store, Feed.cat(CAT))] == public
    mine = [e.type for e in await everything(store, Feed.user(OWNER))]
    assert mine == [installs.InstallationStatusChanged.type, installs.InstallationCreated.type]
    theirs = [e.type for e in await everything(store, Feed.user(PUBLISHER))]
    assert theirs == [cats.CatPublished.type, cats.CatSubmitted.type]
    assert len(await everything(store, Feed.everything())) == 5
    created = (await everything(store, Feed.public()))[0]
    assert created.anonymous
    assert created.details == {"installation_id": str(installation), "name": "Main", "permissions": ["points:read"]}


async def test_pages_and_resumes_neither_overlap_nor_skip(store: ReadModel) -> None:
    await store.apply([published()] + [installed(uuid.uuid4()) for _ in range(11)])
    newest_first = [e.id for e in await everything(store, Feed.public())]
    assert len(newest_first) == 12
    assert newest_first == sorted(newest_first, reverse=True)

    seen: list[int] = []
    before = None
    while True:
        page = await store.page(Feed.public(), before=before, limit=5)
        seen += [e.id for e in page]
        if len(page) < 5:
            break
        before = page[-1].id
    assert seen == newest_first

    resumed = await store.since([Feed.public(), Feed.user(OWNER)], newest_first[5], limit=100)
    assert [e.id for e in resumed] == sorted(newest_first[:5])


async def test_unknown_types_versions_and_malformed_payloads_are_skipped(store: ReadModel) -> None:
    outcomes = await store.apply(
        [
            event("cat.teleported", CAT, cat_id=CAT),
            event(cats.CatPublished.type, CAT, schema_version=2, cat_id=CAT, slug="points"),
            event(
                cats.ReviewCreated.type, CAT, cat_id=CAT, slug="points", review_id=uuid.uuid4(), user_id=OWNER, rating=9
            ),
            event(installs.InstallationCreated.type, CAT, cat_id="not-a-uuid"),
        ]
    )
    assert [o.reason for o in outcomes] == ["unknown_type", "unknown_version", "malformed", "malformed"]
    assert await everything(store, Feed.everything()) == []
    assert (await store.platform_counters())["events_applied"] == 0


async def test_the_live_consumer_is_held_off_while_a_rebuild_runs(store: ReadModel) -> None:
    await store.apply([published()])
    await store.start_rebuild()
    try:
        assert await everything(store, Feed.everything()) == []
        with pytest.raises(Rebuilding):
            await store.apply([installed(uuid.uuid4())])
        rebuilt = await store.apply([published()], rebuild=True)
        assert [o.status for o in rebuilt] == ["applied"]
    finally:
        await store.finish_rebuild()
    assert [o.status for o in await store.apply([installed(uuid.uuid4())])] == ["applied"]


@pytest.mark.skipif(not REDIS_URL, reason="CATHOUSE_REDIS_URL unset")
async def test_redis_keeps_the_newest_1000_global_and_100_per_user() -> None:
    assert REDIS_URL is not None
    prefix = redis_prefix("caps")
    model = RedisReadModel.from_url(REDIS_URL, prefix=prefix)  # the default caps
    try:
        await model.apply([published()] + [installed(uuid.uuid4()) for _ in range(1010)])
        public = await everything(model, Feed.public())
        assert len(public) == 1000
        assert len(await everything(model, Feed.everything())) == 1000
        assert len(await everything(model, Feed.cat(CAT))) == 1000
        mine = await everything(model, Feed.user(OWNER))
        assert len(mine) == 100
        assert [e.id for e in mine] == [e.id for e in public[:100]]  # the newest are kept
        assert public[0].id == await model.latest_id() == 1011
    finally:
        await model.close()
        await drop_keys(prefix)


async def test_an_event_twice_in_one_batch_is_applied_once_and_in_order(store: ReadModel) -> None:
    installation = uuid.uuid4()
    created, active = installed(installation), moved(installation, "pending", "active")

    outcomes = await store.apply([published(), created, active, created, active])

    assert [o.status for o in outcomes] == ["applied", "applied", "applied", "duplicate", "duplicate"]
    assert (await store.cat_counters(CAT))["installs_active"] == 1
    mine = await everything(store, Feed.user(OWNER))
    assert [e.event_id for e in mine] == [active.id, created.id], "newest first, one entry each"

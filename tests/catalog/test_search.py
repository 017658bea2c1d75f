"""Browse and search: words, typos, filters, every sort order's pages, facets."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.catalog import search
from cathouse.platform.db import sessionmaker
from tests.catalog.conftest import VERSION, People, draft, published, version

CATS = [
    {
        "slug": "leaderboard-live",
        "name": "Leaderboard Live",
        "summary": "Real-time rankings for teams and seasons.",
        "category": "leaderboards",
        "tags": ["ranking", "realtime"],
        "description": "Scores update instantly over websockets.",
    },
    {
        "slug": "badge-forge",
        "name": "Badge Forge",
        "summary": "Design achievements and award badges.",
        "category": "badges",
        "tags": ["achievements", "badges"],
        "description": "Criteria are evaluated against your events.",
    },
    {
        "slug": "streak-keeper",
        "name": "Streak Keeper",
        "summary": "Daily streaks with freezes.",
        "category": "streaks",
        "tags": ["habits", "daily"],
        "description": "Reminds people before their streak breaks.",
    },
    {
        "slug": "quest-board",
        "name": "Quest Board",
        "summary": "Multi-step missions that unlock rewards.",
        "category": "quests",
        "tags": ["missions", "achievements"],
        "description": "Chain tasks into a storyline.",
    },
]


async def slugs(api: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await api.get("/api/v1/cats", params=params)
    assert response.status_code == 200, response.text
    return [c["slug"] for c in response.json()["items"]]


@pytest.fixture
async def catalog(api: httpx.AsyncClient, people: People, committed: AsyncEngine) -> list[dict[str, Any]]:
    cats = [await published(api, people, **c) for c in CATS]
    # What reviews and installations will feed, set directly: ratings 4.5, 3, 5, none; installs.
    figures = {
        "leaderboard-live": (2, 9, 0, 0, 0, 1, 1, 40),
        "badge-forge": (1, 3, 0, 0, 1, 0, 0, 10),
        "streak-keeper": (1, 5, 0, 0, 0, 0, 1, 25),
        "quest-board": (0, 0, 0, 0, 0, 0, 0, 5),
    }
    async with committed.begin() as conn:
        for slug, (count, total, r1, r2, r3, r4, r5, installs) in figures.items():
            await conn.execute(
                text(
                    "UPDATE catalog.cats SET rating_count = :c, rating_sum = :s, rating_1 = :r1, rating_2 = :r2, "
                    "rating_3 = :r3, rating_4 = :r4, rating_5 = :r5, install_count = :i WHERE slug = :slug"
                ),
                {"c": count, "s": total, "r1": r1, "r2": r2, "r3": r3, "r4": r4, "r5": r5, "i": installs, "slug": slug},
            )
    await draft(api, people.developer, name="Leaderboard Draft", slug="leaderboard-draft", category="leaderboards")
    return cats


@pytest.mark.usefixtures("catalog")
async def test_words_find_cats_by_name_tags_summary_and_description(api: httpx.AsyncClient) -> None:
    assert await slugs(api, q="leaderboard") == ["leaderboard-live"]
    assert set(await slugs(api, q="achievements")) == {"badge-forge", "quest-board"}
    assert await slugs(api, q="missions") == ["quest-board"]
    assert await slugs(api, q="websockets") == ["leaderboard-live"]  # in the description only
    assert await slugs(api, q="reminding") == ["streak-keeper"]  # stemmed: reminds
    assert await slugs(api, q="kubernetes") == []


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize(
    ("typo", "slug"),
    [("leaderbord", "leaderboard-live"), ("badgeforge", "badge-forge"), ("strek keeper", "streak-keeper")],
)
async def test_typos_are_forgiven(api: httpx.AsyncClient, typo: str, slug: str) -> None:
    assert (await slugs(api, q=typo))[:1] == [slug]


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize("q", ["leaderbord", "acheivements", "achievements or missions", "badgeforge"])
async def test_a_search_has_the_facets_of_what_it_matches(api: httpx.AsyncClient, people: People, q: str) -> None:
    # Kept per term (one term, or a typo whose alternatives one term alone matches) or counted.
    facets = await term_facets(api, people, q)
    assert sum(facets["category"].values()) == len(await slugs(api, q=q))


@pytest.mark.usefixtures("catalog")
async def test_drafts_never_appear(api: httpx.AsyncClient, people: People) -> None:
    assert "leaderboard-draft" not in await slugs(api, q="leaderboard")
    assert "leaderboard-draft" not in await slugs(api, limit=100)
    response = await api.get("/api/v1/cats", params={"q": "draft"}, headers=people.developer.headers)
    assert response.json()["items"] == []


@pytest.mark.usefixtures("catalog")
async def test_filters(api: httpx.AsyncClient, people: People) -> None:
    assert await slugs(api, category="badges") == ["badge-forge"]
    assert set(await slugs(api, tag="achievements")) == {"badge-forge", "quest-board"}
    assert await slugs(api, tag=["achievements", "missions"]) == ["quest-board"]
    assert set(await slugs(api, min_rating=4)) == {"leaderboard-live", "streak-keeper"}
    assert len(await slugs(api, publisher=people.developer.id)) == 4
    assert await slugs(api, publisher=people.other_developer.id) == []
    assert len(await slugs(api, permission="points:write")) == 4
    assert await slugs(api, permission="badges:write") == []
    assert await slugs(api, q="achievements", category="quests") == ["quest-board"]


async def test_the_permission_filter_follows_the_current_version(api: httpx.AsyncClient, people: People) -> None:
    cat = await published(api, people)
    wider = version(
        version="1.1.0",
        permissions=[*VERSION["permissions"], {"name": "badges:write", "description": "Award badges"}],
    )
    await api.post(f"/api/v1/cats/{cat['slug']}/versions", json=wider, headers=people.developer.headers)
    assert await slugs(api, permission="badges:write") == []
    await api.post(f"/api/v1/cats/{cat['slug']}/versions/1.1.0/publish", headers=people.developer.headers)
    assert await slugs(api, permission="badges:write") == [cat["slug"]]


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("popular", ["leaderboard-live", "streak-keeper", "badge-forge", "quest-board"]),
        ("rating", ["streak-keeper", "leaderboard-live", "badge-forge", "quest-board"]),
        ("newest", ["quest-board", "streak-keeper", "badge-forge", "leaderboard-live"]),
        ("name", ["badge-forge", "leaderboard-live", "quest-board", "streak-keeper"]),
    ],
)
async def test_every_order_pages_through_everything_once(
    api: httpx.AsyncClient, sort: str, expected: list[str]
) -> None:
    assert await slugs(api, sort=sort) == expected
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": sort, "limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/v1/cats", params=params)).json()
        seen += [c["slug"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


@pytest.mark.usefixtures("catalog")
async def test_relevance_pages_follow_the_ranking(api: httpx.AsyncClient) -> None:
    first = (await api.get("/api/v1/cats", params={"q": "achievements", "limit": 1})).json()
    assert first["next_cursor"]
    second = await api.get("/api/v1/cats", params={"q": "achievements", "limit": 1, "cursor": first["next_cursor"]})
    both = [first["items"][0]["slug"], second.json()["items"][0]["slug"]]
    assert sorted(both) == ["badge-forge", "quest-board"]
    assert second.json()["next_cursor"] is None


@pytest.mark.usefixtures("catalog")
async def test_facets_count_every_match(api: httpx.AsyncClient) -> None:
    page = (await api.get("/api/v1/cats", params={"q": "achievements", "limit": 1})).json()
    facets = page["facets"]
    assert {f["value"]: f["count"] for f in facets["category"]} == {"badges": 1, "quests": 1}
    tags = {f["value"]: f["count"] for f in facets["tag"]}
    assert tags["achievements"] == 2
    assert tags["missions"] == 1
    later = (await api.get("/api/v1/cats", params={"q": "achievements", "cursor": page["next_cursor"]})).json()
    assert later["facets"] is None


@pytest.mark.usefixtures("catalog")
async def test_facet_counts_are_reused_for_the_same_filters_within_their_ttl(
    api: httpx.AsyncClient, people: People, committed: AsyncEngine
) -> None:
    cache = search.FacetCache(ttl=60)
    # A tag filter: these facets are counted, not kept.
    counted = search.Query(q="achievements", tags=["achievements"])
    async with sessionmaker(committed)() as session:
        first = await search.search(session, counted, cache)
        assert first.facets is not None
        assert dict(first.facets["category"]) == {"badges": 1, "quests": 1}

    await published(api, people, slug="trophy-case", name="Trophy Case", category="badges", tags=["achievements"])

    async with sessionmaker(committed)() as session:
        again = await search.search(session, counted, cache)
        # The new cat is listed at once; its count joins the facets when they expire.
        assert "trophy-case" in {c.slug for c in again.cats}
        assert again.facets == first.facets
        other = await search.search(session, dataclasses.replace(counted, category="badges"), cache)
        assert other.facets is not None
        assert dict(other.facets["category"]) == {"badges": 2}
        fresh = await search.search(session, counted, search.FacetCache(ttl=0))
        assert fresh.facets is not None
        assert dict(fresh.facets["category"]) == {"badges": 2, "quests": 1}
        # One word and no filter but a category: kept counts, exact at once, never cached.
        kept = await search.search(session, search.Query(q="achievements"), cache)
        assert kept.facets == fresh.facets


async def test_every_search_statement_is_planned_with_its_own_values(committed: AsyncEngine) -> None:
    for query in (search.Query(), search.Query(category="badges", tags=["slack"]), search.Query(q="ab")):
        async with sessionmaker(committed)() as session:
            await search.search(session, query)
            assert await session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"


@pytest.mark.usefixtures("catalog")
async def test_a_listing_shows_what_a_storefront_needs(api: httpx.AsyncClient, people: People) -> None:
    item = (await api.get("/api/v1/cats", params={"q": "leaderboard"})).json()["items"][0]
    assert item["rating"] == {"count": 2, "average": 4.5, "histogram": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}}
    assert item["install_count"] == 40
    assert item["current_version"] == "1.0.0"
    assert item["publisher"] == {"id": people.developer.id, "display_name": "Ana"}


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJuYW1lIiwgMV0"},  # a list of the wrong size
        {"limit": 0},
        {"limit": 101},
        {"min_rating": 6},
        {"sort": "random"},
        {"tag": "Not A Tag"},
        {"q": "x" * 201},
        {"q": "points\x00"},
        {"category": "points\x00\n"},
        {"category": "Not A Category"},
    ],
)
async def test_bad_queries_are_refused(api: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await api.get("/api/v1/cats", params=params)
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.usefixtures("catalog")
async def test_a_cursor_of_another_order_is_refused(api: httpx.AsyncClient) -> None:
    cursor = (await api.get("/api/v1/cats", params={"sort": "name", "limit": 1})).json()["next_cursor"]
    response = await api.get("/api/v1/cats", params={"sort": "newest", "cursor": cursor})
    assert response.status_code == 422


async def browse_facets(api: httpx.AsyncClient, **params: Any) -> dict[str, dict[str, int]]:
    page = (await api.get("/api/v1/cats", params=params)).json()
    return {facet: {f["value"]: f["count"] for f in page["facets"][facet]} for facet in ("category", "tag")}


async def term_facets(api: httpx.AsyncClient, people: People, q: str, **params: Any) -> dict[str, dict[str, int]]:
    """The facets of a search for ``q``, kept; asserted equal to the same matches counted (a
    publisher filter counts them)."""
    kept = await browse_facets(api, q=q, **params)
    assert kept == await browse_facets(api, q=q, publisher=people.developer.id, **params)
    return kept


async def test_search_and_browse_facets_follow_every_change_to_a_cat(
    api: httpx.AsyncClient, people: People, committed: AsyncEngine
) -> None:
    await published(api, people, slug="ledger-one", name="Ledger One", category="points", tags=["points", "ledger"])
    other = await published(api, people, slug="forge-two", name="Forge Two", category="badges", tags=["badges"])
    await draft(api, people.developer, slug="draft-three", category="points", tags=["points"])
    assert await browse_facets(api) == {
        "category": {"points": 1, "badges": 1},
        "tag": {"points": 1, "ledger": 1, "badges": 1},
    }
    assert await browse_facets(api, category="points") == {
        "category": {"points": 1},
        "tag": {"points": 1, "ledger": 1},
    }
    # Both descriptions have "ledger"; one name has "forge".
    assert await term_facets(api, people, "ledger") == await browse_facets(api)
    assert await term_facets(api, people, "forge") == {"category": {"badges": 1}, "tag": {"badges": 1}}

    edited = await api.patch(
        "/api/v1/cats/ledger-one",
        json={"name": "Trophy Shelf", "category": "badges", "tags": ["badges", "trophies"]},
        headers=people.developer.headers,
    )
    assert edited.status_code == 200, edited.text
    assert await slugs(api, q="trophy") == ["ledger-one"]
    assert await slugs(api, q="ledger one") == []
    assert await slugs(api, category="badges", sort="name") == ["forge-two", "ledger-one"]
    assert await browse_facets(api) == {"category": {"badges": 2}, "tag": {"badges": 2, "trophies": 1}}
    assert await browse_facets(api, category="points") == {"category": {}, "tag": {}}
    assert await term_facets(api, people, "ledger", category="points") == {"category": {}, "tag": {}}
    trophy = {"category": {"badges": 1}, "tag": {"badges": 1, "trophies": 1}}
    assert await term_facets(api, people, "trophies") == trophy
    assert await term_facets(api, people, "trophy", category="badges") == trophy
    assert await term_facets(api, people, "trophy", category="points") == {"category": {}, "tag": {}}

    # What the install counter and reviews write: the order and the rating filter follow at once.
    async with committed.begin() as conn:
        await conn.execute(text("UPDATE catalog.cats SET install_count = 7 WHERE slug = 'forge-two'"))
        await conn.execute(
            text("UPDATE catalog.cats SET rating_count = 1, rating_sum = 5, rating_5 = 1 WHERE slug = 'ledger-one'")
        )
    assert await slugs(api, sort="popular") == ["forge-two", "ledger-one"]
    assert await slugs(api, min_rating=4) == ["ledger-one"]
    assert await slugs(api, sort="rating") == ["ledger-one", "forge-two"]
    assert await term_facets(api, people, "trophy") == trophy

    hidden = await api.post(
        f"/api/v1/cats/{other['slug']}/suspend", json={"reason": "Under investigation"}, headers=people.admin.headers
    )
    assert hidden.status_code == 200, hidden.text
    assert await slugs(api, q="forge") == []
    assert await term_facets(api, people, "forge") == {"category": {}, "tag": {}}
    assert await browse_facets(api) == {"category": {"badges": 1}, "tag": {"badges": 1, "trophies": 1}}
    back = await api.post(f"/api/v1/cats/{other['slug']}/reinstate", headers=people.admin.headers)
    assert back.status_code == 200, back.text
    assert await slugs(api, q="forge") == ["forge-two"]
    assert await term_facets(api, people, "forge") == {"category": {"badges": 1}, "tag": {"badges": 1}}
    assert await browse_facets(api) == {"category": {"badges": 2}, "tag": {"badges": 2, "trophies": 1}}

    # A filter other than the category counts the matches themselves: the same figures.
    counted = await browse_facets(api, publisher=people.developer.id)
    assert counted == await browse_facets(api)


@pytest.mark.parametrize("sort", ["relevance", "popular", "rating", "newest", "name"])
async def test_every_order_pages_through_every_match_once_despite_ties(
    api: httpx.AsyncClient, people: People, committed: AsyncEngine, sort: str
) -> None:
    # Seven cats with equal installs, ratings and names, and one that does not match.
    for n in range(7):
        await published(api, people, slug=f"twin-{n}", name="Twin Streaks", tags=["streaks"], category="streaks")
    await published(api, people, slug="odd-one", name="Odd One", category="streaks")
    async with committed.begin() as conn:
        await conn.execute(
            text(
                "UPDATE catalog.cats SET install_count = 3, rating_count = 1, rating_sum = 4, rating_4 = 1 "
                "WHERE slug LIKE 'twin-%'"
            )
        )
    everything = await slugs(api, q="streaks", sort=sort, limit=100)
    assert sorted(everything) == [f"twin-{n}" for n in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": "streaks", "sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/cats", params=params)).json()
        seen += [c["slug"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything

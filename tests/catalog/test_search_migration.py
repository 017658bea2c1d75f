"""catalog_0005 and catalog_0006: the cats a catalog already has are searchable, with their
facets, after the upgrade."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.catalog import search
from cathouse.platform import migrations
from cathouse.platform.db import sessionmaker
from cathouse.services import COMPONENTS

INSERT = text(
    "INSERT INTO catalog.cats (id, slug, name, summary, description, category, tags, status, install_count, "
    "published_at) VALUES (gen_random_uuid(), :slug, :name, 'A summary.', :description, :category, :tags, :status, "
    ":installs, CASE WHEN :published THEN now() END)"
)


async def test_the_upgrade_makes_every_published_cat_searchable(scratch: AsyncEngine) -> None:
    await migrations.upgrade(scratch, list(COMPONENTS.values()))
    await migrations.downgrade(scratch, COMPONENTS["catalog"], "catalog_0004")
    cats = [
        ("ledger", "Ledger", "Points with an audit trail.", "points", ["points", "ledger"], "published", 5),
        ("medals", "Medals", "Gold points for winners.", "badges", ["badges"], "published", 9),
        ("sketch", "Sketch", "Points, one day.", "points", ["points"], "draft", 0),
    ]
    async with scratch.begin() as conn:
        for slug, name, description, category, tags, status, installs in cats:
            await conn.execute(
                INSERT,
                {
                    "slug": slug,
                    "name": name,
                    "description": description,
                    "category": category,
                    "tags": tags,
                    "status": status,
                    "installs": installs,
                    "published": status == "published",
                },
            )

    await migrations.upgrade(scratch, list(COMPONENTS.values()))

    async with sessionmaker(scratch)() as session:
        found = await search.search(session, search.Query(q="points", sort="popular"))
        assert [c.slug for c in found.cats] == ["medals", "ledger"]
        browsing = await search.search(session, search.Query())
        assert browsing.facets == {
            "category": [("badges", 1), ("points", 1)],
            "tag": [("badges", 1), ("ledger", 1), ("points", 1)],
        }
        # One word: the kept counts per term, which the upgrade counted.
        assert found.facets == browsing.facets
    # And the triggers keep what the upgrade copied.
    async with scratch.begin() as conn:
        await conn.execute(text("UPDATE catalog.cats SET status = 'delisted' WHERE slug = 'medals'"))
    async with sessionmaker(scratch)() as session:
        assert [c.slug for c in (await search.search(session, search.Query(q="points"))).cats] == ["ledger"]
        assert (await search.search(session, search.Query())).facets == {
            "category": [("points", 1)],
            "tag": [("ledger", 1), ("points", 1)],
        }
        assert (await search.search(session, search.Query(q="points"))).facets == {
            "category": [("points", 1)],
            "tag": [("ledger", 1), ("points", 1)],
        }
        assert (await search.search(session, search.Query(q="gold"))).facets == {"category": [], "tag": []}

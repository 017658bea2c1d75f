"""Manifest-driven sync against a real database and storage, driven by edits to a real directory."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.catalog.assets.storage import AssetStorage, storage_from_settings
from cathouse.catalog.sync import CatalogSync, SyncOutcome
from cathouse.contracts.reads import AccountReader
from cathouse.platform.db import sessionmaker
from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_app, registry
from tests.catalog.conftest import People, draft
from tests.conftest import truncate_schemas

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "cats"


@pytest.fixture
def cats_dir(tmp_path: Path) -> Path:
    target = tmp_path / "cats"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture
def storage(settings: Settings) -> AssetStorage:
    """The storage the app under test serves images from."""
    return storage_from_settings(settings)


async def sync(engine: AsyncEngine, settings: Settings, storage: AssetStorage, root: Path) -> dict[str, str]:
    async with sessionmaker(engine)() as session:
        syncing = CatalogSync(session, settings, storage, registry().get(AccountReader))
        outcomes: list[SyncOutcome] = await syncing.run(root)
        await session.commit()
    return {o.folder: o.result for o in outcomes}


async def event_types(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return [r[0] for r in await conn.execute(text("SELECT event_type FROM events.outbox ORDER BY seq"))]


def edit(path: Path, old: str, new: str) -> None:
    content = path.read_text()
    assert old in content, f"{old!r} is not in {path}"
    path.write_text(content.replace(old, new, 1))


async def test_the_examples_are_published_once_and_then_left_alone(
    api: httpx.AsyncClient, committed: AsyncEngine, settings: Settings, storage: AssetStorage, cats_dir: Path
) -> None:
    first = await sync(committed, settings, storage, cats_dir)
    assert set(first.values()) == {"created"}
    assert len(first) >= 6
    listed = (await api.get("/api/v1/cats", params={"limit": 100})).json()["items"]
    assert {c["slug"] for c in listed} == set(first)
    assert all(c["icon_url"] for c in listed)
    assert all(c["publisher"]["display_name"] == "Cat House" for c in listed)
    points = (await api.get("/api/v1/cats/points-ledger")).json()
    assert points["current_version"] == "1.1.0"
    assert sorted(v["version"] for v in points["versions"]) == ["1.0.0", "1.1.0"]
    icon = await api.get(points["icon_url"])
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/png"
    events_after_first = await event_types(committed)
    assert Counter(events_after_first)["cat.published"] == len(first)

    second = await sync(committed, settings, storage, cats_dir)
    assert set(second.values()) == {"unchanged"}
    assert await event_types(committed) == events_after_first


async def test_an_edit_updates_only_its_cat(
    api: httpx.AsyncClient, committed: AsyncEngine, settings: Settings, storage: AssetStorage, cats_dir: Path
) -> None:
    await sync(committed, settings, storage, cats_dir)
    manifest = cats_dir / "badge-forge" / "cat.yaml"
    summary = (await api.get("/api/v1/cats/badge-forge")).json()["summary"]
    edit(manifest, summary, "Badges, rebuilt.")
    results = await sync(committed, settings, storage, cats_dir)
    assert results["badge-forge"] == "updated"
    assert Counter(results.values())["unchanged"] == len(results) - 1
    assert (await api.get("/api/v1/cats/badge-forge")).json()["summary"] == "Badges, rebuilt."
    assert (await event_types(committed))[-1] == "cat.updated"


async def test_a_new_version_in_the_manifest_is_published(
    api: httpx.AsyncClient, committed: AsyncEngine, settings: Settings, storage: AssetStorage, cats_dir: Path
) -> None:
    await sync(committed, settings, storage, cats_dir)
    manifest = cats_dir / "streak-keeper" / "cat.yaml"
    content = manifest.read_text()
    start = content.index("  - version: ")
    block = content[start:]
    manifest.write_text(content + block.replace(block.split("\n")[0], "  - version: 9.0.0", 1))
    results = await sync(committed, settings, storage, cats_dir)
    assert results["streak-keeper"] == "updated", results
    cat = (await api.get("/api/v1/cats/streak-keeper")).json()
    assert cat["current_version"] == "9.0.0"
    assert "cat.version_published" in await event_types(committed)


async def test_a_broken_manifest_keeps_the_last_good_cat_and_says_why(
    api: httpx.AsyncClient,
    people: People,
    committed: AsyncEngine,
    settings: Settings,
    storage: AssetStorage,
    cats_dir: Path,
) -> None:
    await sync(committed, settings, storage, cats_dir)
    before = (await api.get("/api/v1/cats/quest-board")).json()
    manifest = cats_dir / "quest-board" / "cat.yaml"
    good = manifest.read_text()
    manifest.write_text(good.replace("rate_limit_per_minute:", "rate_limit_per_minute: -1\n    x_rate:", 1))
    results = await sync(committed, settings, storage, cats_dir)
    assert results["quest-board"] == "failed"
    after = (await api.get("/api/v1/cats/quest-board", headers=people.admin.headers)).json()
    assert after["status"] == "published"
    assert after["version"] == {**before["version"], "webhook_url": after["version"]["webhook_url"]}
    assert after["sync_errors"]
    assert any(e["loc"].startswith("versions.0") for e in after["sync_errors"])
    assert all(e["file"] == "quest-board/cat.yaml" for e in after["sync_errors"])
    assert (await api.get("/api/v1/cats/quest-board")).json()["sync_errors"] is None  # not for the public
    manifest.write_text(good)
    assert (await sync(committed, settings, storage, cats_dir))["quest-board"] == "unchanged"
    fixed = (await api.get("/api/v1/cats/quest-board", headers=people.admin.headers)).json()
    assert fixed["sync_errors"] is None


async def test_a_published_version_cannot_be_rewritten(
    api: httpx.AsyncClient, committed: AsyncEngine, settings: Settings, storage: AssetStorage, cats_dir: Path
) -> None:
    await sync(committed, settings, storage, cats_dir)
    manifest = cats_dir / "reward-shop" / "cat.yaml"
    rate = (await api.get("/api/v1/cats/reward-shop")).json()["version"]["rate_limit_per_minute"]
    edit(manifest, f"rate_limit_per_minute: {rate}", f"rate_limit_per_minute: {rate + 1}")
    results = await sync(committed, settings, storage, cats_dir)
    assert results["reward-shop"] == "failed"
    cat = (await api.get("/api/v1/cats/reward-shop")).json()
    assert cat["version"]["rate_limit_per_minute"] == rate


async def test_a_removed_folder_orphans_and_delists_its_cat_until_it_returns(
    api: httpx.AsyncClient,
    people: People,
    committed: AsyncEngine,
    settings: Settings,
    storage: AssetStorage,
    cats_dir: Path,
    tmp_path: Path,
) -> None:
    await sync(committed, settings, storage, cats_dir)
    shutil.move(cats_dir / "webhook-relay", tmp_path / "webhook-relay")
    results = await sync(committed, settings, storage, cats_dir)
    assert results["webhook-relay"] == "orphaned"
    assert (await api.get("/api/v1/cats/webhook-relay")).status_code == 404
    kept = (await api.get("/api/v1/cats/webhook-relay", headers=people.admin.headers)).json()
    assert (kept["status"], kept["orphaned"]) == ("delisted", True)
    again = await sync(committed, settings, storage, cats_dir)
    assert again["webhook-relay"] == "orphaned"
    shutil.move(tmp_path / "webhook-relay", cats_dir / "webhook-relay")
    back = await sync(committed, settings, storage, cats_dir)
    assert back["webhook-relay"] == "updated"
    returned = (await api.get("/api/v1/cats/webhook-relay")).json()
    assert (returned["status"], returned["orphaned"]) == ("published", False)


async def test_a_slug_owned_by_an_api_cat_is_refused(
    api: httpx.AsyncClient,
    people: People,
    committed: AsyncEngine,
    settings: Settings,
    storage: AssetStorage,
    cats_dir: Path,
) -> None:
    await draft(api, people.developer, slug="points-ledger")
    results = await sync(committed, settings, storage, cats_dir)
    assert results["points-ledger"] == "failed"
    own = (await api.get("/api/v1/cats/points-ledger", headers=people.developer.headers)).json()
    assert own["source"] == "api"
    assert own["status"] == "draft"


async def test_the_publisher_named_in_a_manifest_owns_the_cat(
    api: httpx.AsyncClient,
    people: People,
    committed: AsyncEngine,
    settings: Settings,
    storage: AssetStorage,
    cats_dir: Path,
) -> None:
    manifest = cats_dir / "leaderboard-live" / "cat.yaml"
    manifest.write_text(f"publisher: {people.developer.email}\n" + manifest.read_text())
    stranger = cats_dir / "badge-forge" / "cat.yaml"
    stranger.write_text("publisher: nobody@example.com\n" + stranger.read_text())
    results = await sync(committed, settings, storage, cats_dir)
    assert results["leaderboard-live"] == "created"
    assert results["badge-forge"] == "failed"
    cat = (await api.get("/api/v1/cats/leaderboard-live")).json()
    assert cat["publisher"]["id"] == people.developer.id
    mine = await api.get("/api/v1/cats/mine", headers=people.developer.headers)
    assert [c["slug"] for c in mine.json()["items"]] == ["leaderboard-live"]


async def test_validate_reports_every_problem_with_its_path(api: httpx.AsyncClient, people: People) -> None:
    good = (EXAMPLES / "points-ledger" / "cat.yaml").read_bytes()
    headers = people.developer.headers
    assert (await api.post("/api/v1/cats/validate", content=good)).status_code == 401
    yaml_type = {"Content-Type": "application/yaml"}
    ok = await api.post("/api/v1/cats/validate", content=good, headers={**headers, **yaml_type})
    assert ok.status_code == 200
    assert ok.json()["valid"] is True, ok.json()
    bad: dict[str, Any] = {"slug": "Bad Slug", "name": "", "category": "nope", "versions": []}
    report = (await api.post("/api/v1/cats/validate", json=bad, params={"file": "x/cat.json"}, headers=headers)).json()
    assert report["valid"] is False
    locs = {p["loc"] for p in report["problems"]}
    assert {"slug", "name", "versions"} <= locs
    assert all(p["file"] == "x/cat.json" for p in report["problems"])
    garbage = await api.post(
        "/api/v1/cats/validate", content=b"\xff\x00: [", headers={**headers, "Content-Type": "text/plain"}
    )
    assert garbage.status_code == 200
    assert garbage.json()["valid"] is False
    # Nothing, or JSON that is not a mapping, is a report too, as the published body says.
    for nothing in (
        await api.post("/api/v1/cats/validate", headers=headers),
        await api.post("/api/v1/cats/validate", json="a string", headers=headers),
    ):
        assert nothing.status_code == 200
        assert nothing.json()["problems"][0]["message"].startswith("must be a mapping")
    body = (await api.get("/api/v1/openapi.json")).json()["paths"]["/api/v1/cats/validate"]["post"]["requestBody"]
    assert body["required"] is False


async def test_the_manifest_schema_is_served(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/api/v1/cats/manifest.schema.json")).json()
    assert schema["$id"].endswith("/api/v1/cats/manifest.schema.json")
    assert {"slug", "versions"} <= set(schema["required"])


async def test_sync_over_http_is_for_admins_with_a_directory(api: httpx.AsyncClient, people: People) -> None:
    assert (await api.post("/api/v1/cats/sync", headers=people.developer.headers)).status_code == 403
    response = await api.post("/api/v1/cats/sync", headers=people.admin.headers)
    assert response.status_code == 409
    assert "CATHOUSE_CATALOG__MANIFEST_DIR" in response.json()["detail"]


async def test_an_admin_syncs_the_configured_directory_over_http(
    engine: AsyncEngine,
    make_settings: Callable[..., Settings],
    database_url: str,
    platform_client: httpx.AsyncClient,
    people: People,
    cats_dir: Path,
) -> None:
    configured = make_settings(database_url, catalog={"manifest_dir": str(cats_dir)})
    app = create_app([SERVICES["auth"], SERVICES["catalog"]], settings=configured)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                report = await client.post("/api/v1/cats/sync", headers=people.admin.headers)
                assert report.status_code == 200, report.text
                assert report.json()["summary"] == {"created": 8}
                again = (await client.post("/api/v1/cats/sync", headers=people.admin.headers)).json()
                assert again["summary"] == {"unchanged": 8}
                assert len((await client.get("/api/v1/cats")).json()["items"]) == 8
    finally:
        await truncate_schemas(engine, ("catalog", "events"))


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("https://10.0.0.7/v1", "10.0.0.7 is not a public address"),
        ("https://[::1]/v1", "[::1] is not a public address"),
        ("https://sync:secret@api.quest-board.example.com/v1", "must not contain credentials"),
        ("https://api.quest-board.example.com/v1?key=1", "must not have a query or fragment"),
        ('"https://api.quest-board.example.com\\\\v1"', "characters that are not allowed"),
    ],
)
async def test_a_base_url_the_proxy_would_refuse_fails_the_sync_naming_the_field(
    api: httpx.AsyncClient,
    committed: AsyncEngine,
    settings: Settings,
    storage: AssetStorage,
    cats_dir: Path,
    base_url: str,
    reason: str,
) -> None:
    manifest = cats_dir / "quest-board" / "cat.yaml"
    edit(manifest, "base_url: https://api.quest-board.example.com/v1", f"base_url: {base_url}")
    async with sessionmaker(committed)() as session:
        outcomes = await CatalogSync(session, settings, storage, registry().get(AccountReader)).run(cats_dir)
        await session.commit()
    [quests] = [o for o in outcomes if o.folder == "quest-board"]
    assert quests.result == "failed"
    assert [(p.loc, reason in p.message) for p in quests.problems] == [("versions.0.base_url", True)], quests.problems
    assert (await api.get("/api/v1/cats/quest-board")).status_code == 404
    assert {o.result for o in outcomes if o.folder != "quest-board"} == {"created"}


async def test_validate_refuses_a_base_url_the_proxy_would_refuse(api: httpx.AsyncClient, people: People) -> None:
    manifest = (EXAMPLES / "quest-board" / "cat.yaml").read_text()
    private = manifest.replace("https://api.quest-board.example.com/v1", "https://169.254.169.254/latest", 1)
    headers = {**people.developer.headers, "Content-Type": "application/yaml"}
    report = (await api.post("/api/v1/cats/validate", content=private, headers=headers)).json()
    assert report["valid"] is False
    assert [(p["loc"], "is not a public address" in p["message"]) for p in report["problems"]] == [
        ("versions.0.base_url", True)
    ]

"""Rebuilding from the event history gives what the live consumer built, as a function and as the
``cathouse activity rebuild`` command."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cathouse.activity.readmodel import Feed, ReadModel
from cathouse.activity.rebuild import rebuild
from tests.activity.conftest import REDIS_URL, Platform, install
from tests.activity.test_router import review
from tests.installation.conftest import People, publish, wait_for_status
from tests.support import cathouse_env


async def history(live: Platform, people: People) -> uuid.UUID:
    """A little of everything: two cats, installs and an uninstall, reviews edited and hidden."""
    api = live.api
    slug = await publish(api, people)
    other = await publish(api, people)
    first = await install(api, people, slug, name="First")
    second = await install(api, people, other, name="Second")
    await wait_for_status(api, people.owner, first, "active")
    await wait_for_status(api, people.owner, second, "active")
    assert (await api.delete(f"/api/v1/installations/{second}", headers=people.owner.headers)).status_code == 200
    kept = await review(api, slug, people.owner.headers, 4)
    hidden = await review(api, slug, people.stranger.headers, 1)
    edited = await api.patch(f"/api/v1/cats/{slug}/reviews/{kept}", json={"rating": 5}, headers=people.owner.headers)
    assert edited.status_code == 200, edited.text
    hide = f"/api/v1/cats/{slug}/reviews/{hidden}/hide"
    assert (await api.post(hide, json={"reason": "spam"}, headers=people.admin.headers)).status_code == 200
    await live.settle()
    cat_id: str = (await api.get(f"/api/v1/cats/{slug}")).json()["id"]
    return uuid.UUID(cat_id)


async def snapshot(model: ReadModel, people: People, cat_id: uuid.UUID) -> dict[str, Any]:
    """Every feed's entries in event order (ids are renumbered: they are stream positions), and
    every counter."""
    users = [uuid.UUID(a.id) for a in (people.publisher, people.admin, people.owner, people.stranger)]
    feeds = [Feed.everything(), Feed.public(), Feed.cat(cat_id), *(Feed.user(u) for u in users)]
    found: dict[str, Any] = {}
    for feed in feeds:
        entries = await model.page(feed, before=None, limit=10_000)
        found[f"{feed.kind}:{feed.key}"] = sorted(e.content() for e in entries)
    found["cat"] = await model.cat_counters(cat_id)
    found["platform"] = await model.platform_counters()
    return found


async def outbox_size(live: Platform) -> int:
    async with live.engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM events.outbox")) or 0)


async def test_a_rebuild_gives_what_the_live_consumer_built(live: Platform, people: People) -> None:
    cat_id = await history(live, people)
    built = await snapshot(live.model, people, cat_id)
    assert built["cat"]["rating_count"] == 1
    assert built["cat"]["installs_total"] == 1
    newest = await live.model.latest_id()

    seen: list[tuple[int, int]] = []
    report = await rebuild(
        live.model, live.engine, batch_size=7, progress=lambda done, total: seen.append((done, total))
    )

    assert await snapshot(live.model, people, cat_id) == built
    events = await outbox_size(live)
    assert (report.events, report.applied, report.skipped) == (events, events, {})
    assert report.entries == len(built["all:None"])
    assert seen[0] == (0, events)
    assert seen[-1] == (events, events)
    # Ids keep growing across a rebuild: a stream resuming from an old id misses nothing.
    assert min(e.id for e in await live.model.page(Feed.everything(), before=None, limit=10_000)) > newest


@pytest.mark.e2e
async def test_the_rebuild_command_prints_its_progress_and_a_summary(
    live: Platform, people: People, tmp_path: Path, database_url: str
) -> None:
    cat_id = await history(live, people)
    built = await snapshot(live.model, people, cat_id)
    extra = {"COLUMNS": "200"}
    if live.store == "redis":
        assert REDIS_URL is not None
        extra |= {
            "CATHOUSE_REDIS_URL": REDIS_URL,
            "CATHOUSE_ACTIVITY__REDIS_PREFIX": live.settings.activity.redis_prefix,
        }
    env = cathouse_env(tmp_path / "data", extra, database_url=database_url)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cathouse", "activity", "rebuild", "--batch-size", "5"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Activity read model rebuilt" in done.stdout
    events = await outbox_size(live)
    assert f"{events}/{events}" in done.stderr  # the progress bar, finished
    assert await snapshot(live.model, people, cat_id) == built

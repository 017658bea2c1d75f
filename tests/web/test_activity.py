"""The activity page in the process: the public feed in words, older pages as plain links, the
entries newer than the top one for the page's script, and "yours" only for its person.

The whole platform runs in the process (as ``cathouse up`` serves it), its relay feeding the
activity service, on the test database.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.contracts.events import NAMES
from cathouse.platform.settings import Settings
from cathouse.services import create_platform_app
from cathouse.web.activity import PHRASES, sentence
from tests.activity.conftest import settle
from tests.auth.conftest import signed_up
from tests.installation.conftest import People, publish
from tests.web.test_account import PASSWORD as WEB_PASSWORD
from tests.web.test_account import _csrf

Person = Callable[[str], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_platform_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app) as client:
        yield client


@pytest.fixture
async def person(app: FastAPI) -> AsyncIterator[Person]:
    """``await person("Ada")``: a browser of its own (its own cookies), signed up through the pages."""
    clients: list[httpx.AsyncClient] = []

    async def make(name: str) -> httpx.AsyncClient:
        client = _client(app)
        clients.append(client)
        form = await client.get("/sign-up")
        email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        answer = await client.post(
            "/sign-up",
            data={"csrf_token": _csrf(form), "email": email, "password": WEB_PASSWORD, "display_name": name},
        )
        assert answer.status_code == 303, answer.text
        return client

    yield make
    for client in clients:
        await client.aclose()


async def _a_cat(api: httpx.AsyncClient, engine: AsyncEngine) -> str:
    """A published cat (made through the API by a developer, approved by an admin): its slug."""
    publisher = await signed_up(api, roles=("developer",), engine=engine)
    admin = await signed_up(api, roles=("admin",), engine=engine)
    return await publish(api, People(publisher=publisher, admin=admin, owner=publisher, stranger=publisher))


async def _review(client: httpx.AsyncClient, slug: str, rating: int) -> None:
    """A review written by the person signed in on ``client``: the pages have no review form yet,
    so through the API with that person's own token."""
    me = await client.get("/profile")
    email = re.search(r"([\w.-]+@example\.com)", me.text)
    assert email
    pair = await client.post("/api/v1/auth/login", json={"email": email.group(1), "password": WEB_PASSWORD})
    review = await client.post(
        f"/api/v1/cats/{slug}/reviews",
        json={"rating": rating, "title": "Worth it"},
        headers={"Authorization": f"Bearer {pair.json()['access_token']}"},
    )
    assert review.status_code == 201, review.text


def _entries(page: httpx.Response) -> list[str]:
    """The entries' sentences, tags stripped, newest first."""
    items = re.findall(r'<li class="entry" data-id="\d+">\s*<p>(.*?)</p>', page.text, re.S)
    return [re.sub(r"<[^>]+>", "", item) for item in items]


def _older(page: httpx.Response) -> str:
    found = re.search(r'<a href="([^"]+)" rel="next">Older</a>', page.text)
    assert found, "no link to older entries"
    return found.group(1).replace("&amp;", "&")


async def test_the_public_feed_says_what_happened_and_pages_back_with_plain_links(
    api: httpx.AsyncClient, engine: AsyncEngine, person: Person
) -> None:
    slug = await _a_cat(api, engine)
    ada, bea = await person("Ada"), await person("Bea")
    await _review(ada, slug, 4)
    await _review(bea, slug, 5)
    await settle(engine)

    first = await api.get("/activity", params={"limit": 2})
    assert first.status_code == 200
    assert "<h1>Activity</h1>" in first.text
    assert _entries(first) == ["Bea reviewed Points Ledger", "Ada reviewed Points Ledger"]
    assert f'<a href="/cats/{slug}">Points Ledger</a>' in first.text
    assert 'aria-label="5 out of 5">★★★★★</span>' in first.text
    # Nobody is signed in: no live stream, and one's own feed is behind the sign-in.
    assert "data-stream" not in first.text
    assert "activity.js" not in first.text
    assert "Sign in</a> to see new entries appear" in first.text

    # Without JavaScript, older entries are a plain link away, keeping the page size asked for.
    older = _older(first)
    assert older.startswith("/activity?cursor=")
    assert older.endswith("&limit=2")
    second = await api.get(older)
    assert second.status_code == 200
    assert _entries(second)[0] == "Ana published Points Ledger"
    assert '<a href="/activity?limit=2">Newest</a>' in second.text

    broken = await api.get("/activity", params={"cursor": "not a cursor"})
    assert broken.status_code == 422
    assert 'role="alert"' in broken.text


async def test_the_page_script_gets_only_the_entries_above_the_top_one(
    app: FastAPI, api: httpx.AsyncClient, engine: AsyncEngine, person: Person
) -> None:
    slug = await _a_cat(api, engine)
    ada = await person("Ada")
    await settle(engine)
    page = await ada.get("/activity")
    # Signed in, the first page listens to the stream and knows where to ask for newer entries.
    assert 'data-stream="/api/v1/activity/stream"' in page.text
    assert 'data-newer="/activity?after="' in page.text
    assert 'role="status" aria-live="polite"' in page.text
    assert "/static/activity.js" in page.text
    top = re.search(r'data-id="(\d+)"', page.text)
    assert top

    await _review(ada, slug, 3)
    await settle(engine)
    newer = await ada.get("/activity", params={"after": top.group(1)}, headers={"HX-Request": "true"})
    assert newer.status_code == 200
    assert "<html" not in newer.text  # the entries alone, to put on top
    assert _entries(newer) == ["You reviewed Points Ledger"]
    nothing = await ada.get("/activity", params={"after": "999999999999"}, headers={"HX-Request": "true"})
    assert nothing.text.strip() == ""
    # Asked by a person's browser (not the script), ``after`` changes nothing: the whole page.
    assert "<h1>Activity</h1>" in (await ada.get("/activity", params={"after": top.group(1)})).text

    script = await api.get("/static/activity.js")
    assert script.status_code == 200
    assert "EventSource" in script.text


async def test_your_activity_needs_signing_in_and_shows_only_yours(
    api: httpx.AsyncClient, engine: AsyncEngine, person: Person
) -> None:
    refused = await api.get("/activity/mine")
    assert refused.status_code == 303
    assert refused.headers["location"] == "/sign-in?next=/activity/mine"

    slug = await _a_cat(api, engine)
    ada, bea = await person("Ada"), await person("Bea")
    await _review(bea, slug, 2)
    await settle(engine)

    mine = await ada.get("/activity/mine")
    assert mine.status_code == 200
    assert "<h1>Your activity</h1>" in mine.text
    assert 'aria-current="page">Yours</a>' in mine.text
    assert _entries(mine) == ["You joined Cat House"]
    assert "Bea" not in mine.text
    theirs = await bea.get("/activity/mine")
    assert _entries(theirs) == ["You reviewed Points Ledger", "You joined Cat House"]
    # Bea's review is public: Ada sees it in everyone's feed, under Bea's name.
    assert "Bea reviewed Points Ledger" in _entries(await ada.get("/activity"))


def test_every_event_the_platform_publishes_is_said_in_words_and_names_are_escaped() -> None:
    assert set(PHRASES) == NAMES
    entry = {
        "type": "review.created",
        "user": {"id": "u1", "display_name": "<script>alert(1)</script>"},
        "cat": {"slug": "points", "name": "Points & <b>more</b>"},
        "data": {"rating": 4},
    }
    said = sentence(entry, me=None)
    assert "<script>" not in said
    assert said == (
        '&lt;script&gt;alert(1)&lt;/script&gt; reviewed <a href="/cats/points">Points &amp; &lt;b&gt;more&lt;/b&gt;</a>'
    )
    assert sentence(entry, me="u1").startswith("You reviewed")
    gone = {"type": "cat.delisted", "user": None, "cat": {"slug": "old-cat", "name": None}, "data": {}}
    assert sentence(gone, me=None) == "old-cat was delisted"
    ours = {"type": "cat.published", "user": None, "cat": {"slug": "points", "name": "Points"}, "data": {}}
    assert sentence(ours, me=None) == 'Cat House published <a href="/cats/points">Points</a>'
    assert sentence({"type": "something.new", "user": None, "cat": None}, me=None) == "something.new"

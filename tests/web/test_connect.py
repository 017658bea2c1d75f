"""An OAuth 2.0 cat through the pages, in process: installing goes on to the provider, the
installation's page connects (or reconnects) there with a CSRF-guarded form, and the page says
how a return from the provider went, in its own words for the codes it knows and nothing else.

The provider is never reached here: starting an authorization only builds its URL. The real
round trip through a provider, in Chromium, is ``test_oauth_browser``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.services import create_platform_app
from cathouse.web import oauth
from tests.auth.conftest import PASSWORD, Account, signed_up
from tests.catalog.conftest import cat_body, version
from tests.support import in_process
from tests.web.people import csrf

PROVIDER = "https://login.provider.example"
SECRETS = {"api_key": "sk-test-plain-cat-0001"}


@pytest.fixture(scope="module")
async def platform(make_settings: Callable[..., Settings], database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, catalog={"facet_ttl": 0}, events={"poll_interval": 0.05})
    async with in_process(create_platform_app(settings)) as client:
        yield client


def _credentials(grant: str) -> dict[str, Any]:
    scheme: dict[str, Any] = {"type": "oauth2", "grant": grant, "token_url": f"{PROVIDER}/token"}
    if grant == "authorization_code":
        scheme["authorization_url"] = f"{PROVIDER}/authorize"
    return scheme


async def _publish(platform: httpx.AsyncClient, engine: AsyncEngine, credentials: dict[str, Any] | None) -> str:
    """A published cat connecting with OAuth ``credentials``, its client set (None: the catalog
    tests' cat, with a bearer key typed in when installing): its slug."""
    developer = await signed_up(platform, roles=("developer",), engine=engine)
    admin = await signed_up(platform, roles=("admin",), engine=engine)
    created = await platform.post("/api/v1/cats", json=cat_body(name="Provider Points"), headers=developer.headers)
    assert created.status_code == 201, created.text
    slug: str = created.json()["slug"]
    spec = version(webhook_url=None)
    if credentials is not None:
        spec |= {"credentials": credentials, "settings_schema": {"type": "object", "properties": {}}}
    added = await platform.post(f"/api/v1/cats/{slug}/versions", json=spec, headers=developer.headers)
    assert added.status_code == 201, added.text
    if credentials is not None:
        client = {"client_id": "cathouse-pages", "client_secret": "a-client-secret-of-the-publisher"}
        put = await platform.put(f"/api/v1/cats/{slug}/oauth-client", json=client, headers=developer.headers)
        assert put.status_code == 200, put.text
    await platform.post(f"/api/v1/cats/{slug}/submit", headers=developer.headers)
    approved = await platform.post(f"/api/v1/cats/{slug}/approve", headers=admin.headers)
    assert approved.status_code == 200, approved.text
    return slug


@pytest.fixture(scope="module")
async def slug(platform: httpx.AsyncClient, engine: AsyncEngine) -> str:
    return await _publish(platform, engine, _credentials("authorization_code"))


async def _signed_in(client: httpx.AsyncClient, account: Account) -> None:
    client.cookies.clear()
    form = await client.get("/sign-in")
    answer = await client.post(
        "/sign-in", data={"csrf_token": csrf(form), "email": account.email, "password": PASSWORD, "next": "/"}
    )
    assert answer.status_code == 303, answer.text


async def _installed(platform: httpx.AsyncClient, slug: str) -> tuple[Account, str, httpx.Response]:
    """A new person who installed ``slug`` through the pages: who, the installation, the answer."""
    owner = await signed_up(platform)
    await _signed_in(platform, owner)
    form = await platform.get(f"/cats/{slug}/install")
    assert form.status_code == 200, form.text
    answer = await platform.post(
        f"/cats/{slug}/install",
        data={"csrf_token": csrf(form), "version": "1.0.0", "name": f"Main {uuid.uuid4().hex[:6]}"},
    )
    assert answer.status_code == 303, answer.text
    found = re.search(r"/installations/([0-9a-f-]{36})", answer.headers["location"])
    if found:
        return owner, found.group(1), answer
    # Gone straight on to the provider: the installation is the person's newest.
    mine = await platform.get("/api/v1/installations", headers=owner.headers)
    return owner, str(mine.json()["items"][0]["id"]), answer


def _to_provider(answer: httpx.Response) -> dict[str, list[str]]:
    location = answer.headers["location"]
    assert location.startswith(f"{PROVIDER}/authorize?"), location
    return parse_qs(urlsplit(location).query)


async def test_installing_an_oauth_cat_goes_on_to_its_provider(platform: httpx.AsyncClient, slug: str) -> None:
    owner = await signed_up(platform)
    await _signed_in(platform, owner)
    form = await platform.get(f"/cats/{slug}/install")
    assert "Access at login.provider.example" in form.text
    assert 'type="password"' not in form.text  # no secret to type: the provider grants access
    assert 'name="permissions"' in form.text or "points:read" in form.text  # consent stays
    assert "Install and connect at login.provider.example" in form.text

    # Straight on to the provider, with an authorization the pages asked the API for.
    _, installation_id, answer = await _installed(platform, slug)
    assert answer.headers["cache-control"] == "no-store"
    sent = _to_provider(answer)
    assert sent["client_id"] == ["cathouse-pages"]
    assert sent["state"][0]

    page = await platform.get(f"/installations/{installation_id}")
    assert "Waiting for you to grant access" in page.text
    assert "Connect at login.provider.example" in page.text
    assert f'action="/installations/{installation_id}/connect"' in page.text


async def test_connect_needs_the_csrf_token_and_sends_the_browser_to_the_provider(
    platform: httpx.AsyncClient, engine: AsyncEngine, slug: str
) -> None:
    _, installation_id, _ = await _installed(platform, slug)
    here = f"/installations/{installation_id}"
    page = await platform.get(here)

    async def states() -> int:
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM installation.oauth_states WHERE installation_id = :id"),
                {"id": installation_id},
            )
        return int(found or 0)

    started = await states()  # the install itself started one
    refused = await platform.post(f"{here}/connect", data={})
    assert refused.status_code == 403
    assert "security token" in refused.text
    assert await states() == started  # the refused form started none

    sent = await platform.post(f"{here}/connect", data={"csrf_token": csrf(page)})
    assert sent.status_code == 303, sent.text
    assert "no-store" in sent.headers["cache-control"]
    query = _to_provider(sent)
    assert query["redirect_uri"][0].endswith("/api/v1/oauth/callback")

    # Someone else's installation, or no installation at all: nothing to connect.
    stranger = await signed_up(platform)
    await _signed_in(platform, stranger)
    theirs = await platform.get("/installations")
    foreign = await platform.post(f"{here}/connect", data={"csrf_token": csrf(theirs)})
    assert foreign.status_code == 404
    assert "login.provider.example" not in foreign.text


async def test_a_broken_grant_shows_why_and_reconnects(
    platform: httpx.AsyncClient, engine: AsyncEngine, slug: str
) -> None:
    _, installation_id, _ = await _installed(platform, slug)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE installation.installations SET status = 'credentials_invalid', "
                "status_reason = 'the provider refused the refresh: invalid_grant' WHERE id = :id"
            ),
            {"id": installation_id},
        )
    here = f"/installations/{installation_id}"
    page = await platform.get(here)
    assert "The cat refused its credentials" in page.text
    assert "invalid_grant" in page.text
    assert "Reconnect at login.provider.example" in page.text
    again = await platform.post(f"{here}/connect", data={"csrf_token": csrf(page)})
    assert again.status_code == 303, again.text
    _to_provider(again)


async def test_the_page_says_how_the_return_went_in_its_own_words(platform: httpx.AsyncClient, slug: str) -> None:
    _, installation_id, _ = await _installed(platform, slug)
    here = f"/installations/{installation_id}"

    connected = await platform.get(here, params={"oauth": "connected"})
    assert oauth.CONNECTED in connected.text
    for code, words in oauth.ERRORS.items():
        shown = await platform.get(here, params={"oauth_error": code})
        assert shown.status_code == 200
        assert words in shown.text, code
    denied = await platform.get(here, params={"oauth_error": "denied"})
    assert "You did not grant access at the provider; nothing changed." in denied.text

    # Anything else in those parameters is not shown, nor any of our messages.
    plain = await platform.get(here)
    for crafted in (
        {"oauth_error": "Your account is locked: call +1 555 0100"},
        {"oauth_error": "<script>alert(1)</script>"},
        {"oauth": "Your account is locked: call +1 555 0100"},
        {"oauth": "denied", "oauth_error": "nonsense"},
    ):
        answer = await platform.get(here, params=crafted)
        assert answer.status_code == 200
        for value in crafted.values():
            assert value not in answer.text
        assert "alert(1)" not in answer.text
        assert 'class="problem"' not in answer.text
        assert oauth.CONNECTED not in answer.text
        assert answer.text.count('class="notice"') == plain.text.count('class="notice"')


async def test_other_cats_are_installed_as_before(platform: httpx.AsyncClient, engine: AsyncEngine) -> None:
    # The platform's own client fetches the token: nobody goes to a provider.
    machine = await _publish(platform, engine, _credentials("client_credentials"))
    _, installation_id, answer = await _installed(platform, machine)
    assert answer.headers["location"] == f"/installations/{installation_id}"
    page = await platform.get(answer.headers["location"])
    assert "Connect at" not in page.text

    # A cat without OAuth cannot be connected: the page says so.
    bearer = await _publish(platform, engine, None)
    owner = await signed_up(platform)
    await _signed_in(platform, owner)
    form = await platform.get(f"/cats/{bearer}/install")
    assert "Access at" not in form.text
    made = await platform.post(
        "/api/v1/installations",
        json={"cat": bearer, "name": "Plain", "permissions": ["points:read", "points:write"], "secrets": SECRETS},
        headers=owner.headers,
    )
    assert made.status_code == 201, made.text
    here = f"/installations/{made.json()['id']}"
    page = await platform.get(here)
    refused = await platform.post(f"{here}/connect", data={"csrf_token": csrf(page)})
    assert refused.status_code == 409
    assert "OAuth" in refused.text

"""No page shows a secret, a token or another person's data: every page the site serves by GET,
asked by each kind of visitor, read for what must never be in it.

An owner installs a cat with a secret setting and makes an API key through the pages; a
stranger, the cat's publisher, an admin and a visitor who is not signed in then open every
page, the owner's installation's pages included (as the URL a stranger might guess). None of
the pages may hold any person's access or refresh token (read out of their sealed session
cookies), a session cookie, a password, the secret setting, the API key (shown once, in the
answer to the form that made it, which no GET repeats) or the cat's webhook signing secret
(shown when its publisher asks, by a form post). The owner's email and installation's name are
in the owner's pages and the admin's, never in a stranger's or the publisher's; the stranger's
email is in no one else's.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.security.session import COOKIE, SessionSeal
from cathouse.platform.settings import Settings
from cathouse.services import create_platform_app
from cathouse.web.app import ROUTERS
from tests.auth.conftest import PASSWORD, Account, signed_up
from tests.catalog.conftest import cat_body, version
from tests.installation.conftest import wait_for_status
from tests.support import in_process

SECRET = "sk-live-never-shown-9c41a2"
INSTALLATION_NAME = "Private board 7f3e of the owner"
SCHEMA = {
    "type": "object",
    "properties": {"api_key": {"type": "string", "writeOnly": True, "title": "API key"}},
    "required": ["api_key"],
}


@dataclass
class Visitor:
    name: str
    client: httpx.AsyncClient
    account: Account | None


@pytest.fixture(scope="module")
async def settings_and_app(
    make_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    settings = make_settings(database_url, catalog={"facet_ttl": 0}, events={"poll_interval": 0.05})
    async with in_process(create_platform_app(settings)) as client:
        yield settings, client


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, f"the form of {page.url} carries no CSRF token"
    return found.group(1)


async def _browser(platform: httpx.AsyncClient, account: Account | None) -> httpx.AsyncClient:
    """A browser of its own (a cookie jar) on the same in-process platform, signed in as ``account``."""
    browser = httpx.AsyncClient(transport=platform._transport, base_url=str(platform.base_url))
    form = await browser.get("/sign-in")  # a session, signed in or not, starts with a page
    if account is not None:
        signed_in = await browser.post(
            "/sign-in", data={"csrf_token": _csrf(form), "email": account.email, "password": PASSWORD, "next": "/"}
        )
        assert signed_in.status_code == 303, signed_in.text
    return browser


def _pages(slug: str, installation_id: str) -> list[str]:
    """Every GET page of the site, its path parameters filled in: a new one must be named here."""
    values = {"slug": slug, "installation_id": installation_id}
    paths = []
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and "GET" in (route.methods or set()):
                named = set(re.findall(r"{(\w+)}", route.path))
                assert named <= values.keys(), f"{route.path}: give this test a value for {named - values.keys()}"
                paths.append(route.path.format(**values))
    return paths


async def test_no_page_shows_a_secret_a_token_or_another_persons_data(
    settings_and_app: tuple[Settings, httpx.AsyncClient], engine: AsyncEngine
) -> None:
    settings, platform = settings_and_app
    publisher = await signed_up(platform, roles=("developer",), engine=engine)
    admin = await signed_up(platform, roles=("admin",), engine=engine)
    owner, stranger = await signed_up(platform), await signed_up(platform)

    # The publisher's cat, with a secret setting; approved.
    created = await platform.post("/api/v1/cats", json=cat_body(), headers=publisher.headers)
    assert created.status_code == 201, created.text
    slug = created.json()["slug"]
    spec = version(webhook_url=None, settings_schema=SCHEMA)
    added = await platform.post(f"/api/v1/cats/{slug}/versions", json=spec, headers=publisher.headers)
    assert added.status_code == 201, added.text
    await platform.post(f"/api/v1/cats/{slug}/submit", headers=publisher.headers)
    approved = await platform.post(f"/api/v1/cats/{slug}/approve", headers=admin.headers)
    assert approved.status_code == 200, approved.text
    signing = await platform.get(f"/api/v1/cats/{slug}/webhook-secrets", headers=publisher.headers)
    assert signing.status_code == 200, signing.text
    signing_secrets = [s["secret"] for s in signing.json()]
    assert signing_secrets

    visitors = [
        Visitor(name, await _browser(platform, account), account)
        for name, account in [
            ("owner", owner),
            ("stranger", stranger),
            ("publisher", publisher),
            ("admin", admin),
            ("visitor", None),
        ]
    ]
    owners = visitors[0].client
    try:
        # The owner installs through the pages, with the secret, and makes a key there.
        form = await owners.get(f"/cats/{slug}/install")
        installed = await owners.post(
            f"/cats/{slug}/install",
            data={
                "csrf_token": _csrf(form),
                "version": "1.0.0",
                "name": INSTALLATION_NAME,
                "secrets.api_key": SECRET,
            },
        )
        assert installed.status_code == 303, installed.text
        installation_id = installed.headers["location"].rsplit("/", 1)[-1]
        await wait_for_status(platform, owner, installation_id, "active")
        page = await owners.get(f"/installations/{installation_id}")
        made = await owners.post(
            f"/installations/{installation_id}/api-keys", data={"csrf_token": _csrf(page), "key_name": "ci"}
        )
        key = re.search(r'id="new-key" type="text" readonly value="([^"]+)"', made.text)
        assert key, made.text

        seal = SessionSeal(settings.master_key_value())
        never = {"the password": PASSWORD, "the secret setting": SECRET, "the API key": key.group(1)}
        never |= {f"signing secret {n}": s for n, s in enumerate(signing_secrets)}
        for visitor in visitors:
            cookie = visitor.client.cookies.get(COOKIE)
            assert cookie, f"{visitor.name} has no session cookie"
            session = seal.open(cookie)
            assert session is not None
            never[f"{visitor.name}'s session cookie"] = cookie
            if session.access_token:
                never[f"{visitor.name}'s access token"] = session.access_token
                never[f"{visitor.name}'s refresh token"] = session.refresh_token or ""
        for account in (publisher, admin, owner, stranger):  # the API's own tokens for them too
            never[f"a token of {account.email}"] = account.access_token
            never[f"a refresh token of {account.email}"] = account.refresh_token

        private = {
            "owner": {owner.email, INSTALLATION_NAME},
            "stranger": {stranger.email},
        }
        seen: dict[str, int] = {}
        for visitor in visitors:
            for path in _pages(slug, installation_id):
                answer = await visitor.client.get(path, follow_redirects=True)
                assert answer.status_code < 500, f"{visitor.name} {path}: {answer.status_code}"
                seen[path] = seen.get(path, 0) + (answer.status_code == 200)
                for what, value in never.items():
                    assert value not in answer.text, f"{visitor.name} {path} shows {what}"
                if visitor.name == "admin":
                    continue  # the admin's pages name people: finding users is their work
                for whose, values in private.items():
                    if whose != visitor.name:
                        for value in values:
                            assert value not in answer.text, f"{visitor.name} {path} shows {whose}'s {value!r}"
        # The owner's pages did show what is theirs: the check above looked where it mattered.
        own = await owners.get(f"/installations/{installation_id}")
        assert INSTALLATION_NAME in own.text
        assert all(count > 0 for count in seen.values()), f"pages no visitor could open: {seen}"
    finally:
        for visitor in visitors:
            await visitor.client.aclose()

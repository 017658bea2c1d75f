"""A person installs an OAuth 2.0 cat in Chromium: from the storefront to the provider's consent
page and back, connected; or back having refused, and connecting again from the page.

The provider is the OAuth tests' real one (Authlib's server, ``tests.installation.oauth``) in a
process of its own on loopback; its ``/api`` is the cat's API and answers with the user the
token was granted by (``sub``). The cat is published through the API by a developer, with its
OAuth client registered at the provider for the storefront's callback, and approved by the
storefront's admin. The person's application is this test calling the proxy with httpx, with
the key the installation's page showed.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.catalog.conftest import cat_body
from tests.installation.oauth.conftest import oauth_version
from tests.installation.oauth.support import Provider, running_provider
from tests.web.browsing import ADMIN_PASSWORD, Storefront, api_token, bearer, screenshots, sign_up

pytestmark = pytest.mark.e2e

DEVELOPER_PASSWORD = "a developer passphrase of some length"
CAT_NAME = "Provider Points"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with running_provider(access_ttl=60) as running:
        yield running


@pytest.fixture(scope="module")
async def slug(storefront: Storefront, provider: Provider) -> str:
    """A developer's OAuth cat with its client set, approved by the storefront's admin."""
    email = f"dev-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=storefront.base, timeout=10) as api:
        registered = await api.post(
            "/api/v1/auth/register", json={"email": email, "password": DEVELOPER_PASSWORD, "display_name": "Points Co"}
        )
        registered.raise_for_status()
        admin = bearer(await api_token(api, storefront.admin, ADMIN_PASSWORD))
        promoted = await api.put(
            f"/api/v1/users/{registered.json()['id']}/roles", json={"roles": ["developer"]}, headers=admin
        )
        promoted.raise_for_status()
        developer = bearer(await api_token(api, email, DEVELOPER_PASSWORD))
        name = f"points-{uuid.uuid4().hex[:8]}"
        created = await api.post("/api/v1/cats", json=cat_body(name, name=CAT_NAME), headers=developer)
        created.raise_for_status()
        added = await api.post(f"/api/v1/cats/{name}/versions", json=oauth_version(provider), headers=developer)
        assert added.status_code == 201, added.text
        client_id, secret = provider.register_client(f"{storefront.base}/api/v1/oauth/callback")
        client = {"client_id": client_id, "client_secret": secret}
        put = await api.put(f"/api/v1/cats/{name}/oauth-client", json=client, headers=developer)
        assert put.status_code == 200, put.text
        (await api.post(f"/api/v1/cats/{name}/submit", headers=developer)).raise_for_status()
        (await api.post(f"/api/v1/cats/{name}/approve", headers=admin)).raise_for_status()
    return name


async def _install(page: Page, storefront: Storefront, slug: str, name: str, provider: Provider) -> None:
    """Install ``slug`` as ``name`` from its page, landing on the provider's consent page."""
    await page.goto(f"{storefront.base}/cats/{slug}")
    await page.get_by_role("link", name="Install", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Install {CAT_NAME}")
    await page.get_by_label("Name of this installation").fill(name)
    host = provider.url.removeprefix("http://")
    await page.get_by_role("button", name=f"Install and connect at {host}").click()
    await expect(page).to_have_url(re.compile("^" + re.escape(provider.authorization_url + "?")))
    await expect(page.get_by_label("Username")).to_be_visible()


async def _proxied(storefront: Storefront, installation_id: str, key: str) -> httpx.Response:
    """A call through the proxy once it has seen the installation connected."""
    async with httpx.AsyncClient(base_url=storefront.base, timeout=10) as app:
        for _ in range(60):
            answer = await app.get(f"/api/v1/proxy/{installation_id}/balances/7", headers=bearer(key))
            if answer.status_code != 409:
                return answer
            await asyncio.sleep(0.25)
    return answer


async def test_a_person_grants_access_at_the_provider_and_calls_the_cat(
    storefront: Storefront, page: Page, slug: str, provider: Provider
) -> None:
    await sign_up(page, storefront, "Oona")
    await page.goto(f"{storefront.base}/cats/{slug}/install")
    host = provider.url.removeprefix("http://")
    await expect(page.get_by_role("heading", name=f"Access at {host}")).to_be_visible()
    await expect(page.get_by_text("points:read")).to_be_visible()  # consent to permissions stays
    assert await page.locator('input[type="password"]').count() == 0
    await screenshots(page, storefront, "oauth-install")

    await _install(page, storefront, slug, "Oona's points", provider)
    await screenshots(page, storefront, "oauth-provider-consent")
    await page.get_by_label("Username").fill("oona")
    await page.get_by_role("button", name="Allow").click()

    # Back on the installation's page, connected; the status follows it to active.
    await expect(page).to_have_url(re.compile(r"/installations/[0-9a-f-]{36}\?oauth=connected$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Oona's points")
    await expect(page.get_by_role("status").filter(has_text="the installation is connected")).to_be_visible()
    await expect(page.locator("#status .status")).to_have_text("Active", timeout=20_000)
    await screenshots(page, storefront, "oauth-installation-connected")
    installation_id = page.url.split("?", 1)[0].rsplit("/", 1)[1]

    # The person's application calls the cat with a key made on the page: the provider's token
    # for oona is what the cat sees.
    await page.get_by_label("Name of a new key").fill("backend")
    await page.get_by_role("button", name="Create a key").click()
    key = await page.get_by_label("Your new key “backend”").input_value()
    assert key.startswith("chk_")
    called = await _proxied(storefront, installation_id, key)
    assert called.status_code == 200, called.text
    assert called.json()["sub"] == "oona"
    assert called.json()["path"] == "/balances/7"
    for secret in provider.issued():  # the provider's tokens are in no page
        assert secret not in await page.content()


async def test_a_person_refuses_at_the_provider_and_connects_later(
    storefront: Storefront, page: Page, slug: str, provider: Provider
) -> None:
    await sign_up(page, storefront, "Pavo")
    await _install(page, storefront, slug, "Pavo's points", provider)
    await page.get_by_role("button", name="Deny").click()

    await expect(page).to_have_url(re.compile(r"/installations/[0-9a-f-]{36}\?oauth_error=denied$"))
    await expect(page.get_by_role("alert")).to_have_text(
        "You did not grant access at the provider; nothing changed. Connect again when ready."
    )
    await expect(page.locator("#status .status")).to_have_text("Waiting for you to grant access at the cat's provider")
    host = provider.url.removeprefix("http://")
    await screenshots(page, storefront, "oauth-installation-denied")

    # Connecting again from the page: the same consent, granted this time.
    await page.get_by_role("button", name=f"Connect at {host}").click()
    await expect(page).to_have_url(re.compile("^" + re.escape(provider.authorization_url + "?")))
    await page.get_by_label("Username").fill("pavo")
    await page.get_by_role("button", name="Allow").click()
    await expect(page).to_have_url(re.compile(r"\?oauth=connected$"))
    await expect(page.locator("#status .status")).to_have_text("Active", timeout=20_000)
    await expect(page.get_by_role("button", name=f"Connect at {host}")).to_have_count(0)

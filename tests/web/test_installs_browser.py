"""A person installs a cat in a real browser, uses it through an API key, upgrades and uninstalls it.

The cat is real: its API and its provisioning webhook are an HTTP server of this test on a
loopback port (the storefront allows loopback for the proxy and for webhooks), published through
the API by a developer and approved by an admin. The person's application is this test calling
the proxy with httpx, with the key the page showed once (as copied by the page's Copy button).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.catalog.conftest import cat_body, version
from tests.support import free_port, serving
from tests.web.browsing import ADMIN_PASSWORD, Storefront, api_token, bearer, screenshots, sign_up

pytestmark = pytest.mark.e2e

SECRET = "sk-live-browser-canary-91b2"
DEVELOPER_PASSWORD = "a developer passphrase of some length"
PERMISSIONS = [
    {"name": "points:read", "description": "Read balances", "required": True},
    {"name": "points:history", "description": "Read past awards", "required": False},
    {"name": "points:export", "description": "Export the ledger", "required": False},
]
ENDPOINTS = [
    {"method": "GET", "path": "/balances/{user_id}", "permission": "points:read"},
    {"method": "GET", "path": "/history", "permission": "points:history"},
    {"method": "GET", "path": "/export", "permission": "points:export"},
]
SCHEMA = {
    "type": "object",
    "properties": {
        "api_key": {"type": "string", "writeOnly": True, "title": "Ledger API key"},
        "team": {"type": "string", "title": "Team", "default": "blue", "description": "Whose points these are."},
        "period": {"enum": ["daily", "weekly"], "default": "weekly", "title": "Reset period"},
    },
    "required": ["api_key"],
}


@dataclass
class Cat:
    """The cat's API and webhook receiver: what each received."""

    port: int
    calls: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization)
    webhooks: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
async def cat() -> AsyncIterator[Cat]:
    served = Cat(port=free_port())

    async def hook(request: Request) -> Response:
        kind = (await request.json())["type"]
        served.webhooks.append(kind)
        if kind == "installation.provisioned":
            await asyncio.sleep(1.5)  # setting up takes a moment: the page shows it happening
        return JSONResponse({"ok": True})

    async def api(request: Request) -> Response:
        served.calls.append((request.url.path, request.headers.get("authorization", "")))
        return JSONResponse({"user": request.path_params["rest"], "balance": 42})

    app = Starlette(routes=[Route("/hooks", hook, methods=["POST"]), Route("/v1/{rest:path}", api)])
    async with serving(app, served.port):
        yield served


@dataclass
class Publisher:
    slug: str
    token: str


@pytest.fixture(scope="module")
async def published(storefront: Storefront, cat: Cat) -> Publisher:
    """A developer's cat on ``cat``, approved by the storefront's admin."""
    email = f"dev-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=storefront.base, timeout=10) as api:
        registered = await api.post(
            "/api/v1/auth/register", json={"email": email, "password": DEVELOPER_PASSWORD, "display_name": "Ledger Co"}
        )
        registered.raise_for_status()
        admin = bearer(await api_token(api, storefront.admin, ADMIN_PASSWORD))
        promoted = await api.put(
            f"/api/v1/users/{registered.json()['id']}/roles", json={"roles": ["developer"]}, headers=admin
        )
        promoted.raise_for_status()
        token = await api_token(api, email, DEVELOPER_PASSWORD)
        slug = f"ledger-{uuid.uuid4().hex[:8]}"
        created = await api.post("/api/v1/cats", json=cat_body(slug, name="Browser Ledger"), headers=bearer(token))
        created.raise_for_status()
        spec = _version("1.0.0", cat)
        added = await api.post(f"/api/v1/cats/{slug}/versions", json=spec, headers=bearer(token))
        assert added.status_code == 201, added.text
        (await api.post(f"/api/v1/cats/{slug}/submit", headers=bearer(token))).raise_for_status()
        (await api.post(f"/api/v1/cats/{slug}/approve", headers=admin)).raise_for_status()
    return Publisher(slug, token)


def _version(
    label: str, cat: Cat, permissions: list[dict[str, Any]] = PERMISSIONS, endpoints: list[dict[str, Any]] = ENDPOINTS
) -> dict[str, Any]:
    return version(
        version=label,
        base_url=f"{cat.url}/v1",
        webhook_url=f"{cat.url}/hooks",
        permissions=permissions,
        endpoints=endpoints,
        settings_schema=SCHEMA,
        changelog=f"Version {label}.",
    )


async def _reload_until(page: Page, text: str, tries: int = 40) -> None:
    """Reload ``page`` until it says ``text``: what the platform writes behind the page's back."""
    for _ in range(tries):
        if text in await page.content():
            return
        await asyncio.sleep(0.25)
        await page.reload()
    await expect(page.get_by_text(text)).to_be_visible()


async def test_a_person_installs_a_cat_calls_it_with_a_key_upgrades_and_uninstalls_it(
    storefront: Storefront, page: Page, published: Publisher, cat: Cat
) -> None:
    slug = published.slug
    # Signed out, Install leads to signing in, and back to installing.
    await page.goto(f"{storefront.base}/cats/{slug}")
    await page.get_by_role("link", name="Install", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/sign-in\?next=/cats/.+/install$"))
    await sign_up(page, storefront, "Mina", next=f"/cats/{slug}/install")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Install Browser Ledger")

    # The consent screen: one optional permission ticked, the other left unticked; a secret.
    await expect(page.get_by_text("points:read")).to_be_visible()
    await expect(page.get_by_label("Reset period")).to_have_value("weekly")
    await expect(page.get_by_label("Team")).to_have_value("blue")
    await page.get_by_label("points:history").check()
    await expect(page.get_by_label("points:export")).not_to_be_checked()
    await page.get_by_label("Name of this installation").fill("Main ledger")
    await page.get_by_label("Reset period").select_option("daily")
    await page.get_by_label("Ledger API key").fill(SECRET)
    await screenshots(page, storefront, "installs-install")
    await page.get_by_role("button", name="Install Browser Ledger").click()

    # The installation's page follows the status while the cat sets it up, without a reload.
    await expect(page.get_by_role("heading", level=1)).to_have_text("Main ledger")
    status = page.locator("#status .status")
    await expect(status).to_have_text(re.compile("Waiting to be set up|Being set up by the cat"))
    await screenshots(page, storefront, "installs-installation-moving")
    await expect(status).to_have_text("Active", timeout=15_000)
    installation_id = page.url.rsplit("/", 1)[1]
    granted = page.get_by_role("region", name="Permissions you allowed").locator("dt")
    await expect(granted).to_have_text(["points:history", "points:read"])
    assert SECRET not in await page.content()

    # A key, shown once, copied with the page's button.
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.get_by_label("Name of a new key").fill("billing backend")
    await page.get_by_role("button", name="Create a key").click()
    await page.get_by_role("button", name="Copy").click()
    await expect(page.get_by_role("button", name="Copied")).to_be_visible()
    key = str(await page.evaluate("navigator.clipboard.readText()"))
    assert key.startswith("chk_")
    assert key == await page.get_by_label("Your new key “billing backend”").input_value()
    await screenshots(page, storefront, "installs-installation-new-key")

    # The person's application calls the cat with it; the unticked permission is refused.
    async with httpx.AsyncClient(base_url=storefront.base, timeout=10) as app:
        proxy = f"/api/v1/proxy/{installation_id}"
        balance = await app.get(f"{proxy}/balances/u_42", headers=bearer(key))
        assert balance.status_code == 200, balance.text
        assert balance.json() == {"user": "balances/u_42", "balance": 42}
        assert cat.calls[-1] == ("/v1/balances/u_42", f"Bearer {SECRET}")  # the secret, added by the proxy
        export = await app.get(f"{proxy}/export", headers=bearer(key))
        assert export.status_code == 403
    await page.goto(f"{storefront.base}/installations/{installation_id}")
    assert key not in await page.content()
    await _reload_until(page, "2 calls in the last 14 days")
    await expect(page.locator("table.deliveries")).to_contain_text("installation.provisioned")
    await expect(page.locator("table.deliveries")).to_contain_text("succeeded")

    # A new version asks for one more permission: the upgrade asks again, then it is granted.
    spend = {"name": "points:spend", "description": "Spend points", "required": True}
    spending = {"method": "POST", "path": "/spend", "permission": "points:spend"}
    newer = _version("1.1.0", cat, [*PERMISSIONS, spend], [*ENDPOINTS, spending])
    async with httpx.AsyncClient(base_url=storefront.base, timeout=10) as api:
        headers = bearer(published.token)
        added = await api.post(f"/api/v1/cats/{slug}/versions", json=newer, headers=headers)
        assert added.status_code == 201, added.text
        (await api.post(f"/api/v1/cats/{slug}/versions/1.1.0/publish", headers=headers)).raise_for_status()
    await page.reload()
    await page.get_by_role("link", name="Review and upgrade").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Upgrade Main ledger to version 1.1.0")
    await expect(page.get_by_role("listitem").filter(has_text="points:spend")).to_contain_text("new")
    await screenshots(page, storefront, "installs-upgrade")
    await page.get_by_role("button", name="Allow and upgrade").click()
    await expect(page.locator(".meta").first).to_contain_text("version 1.1.0")
    await expect(granted).to_have_text(["points:history", "points:read", "points:spend"])

    await page.get_by_role("link", name="Installations", exact=True).click()
    await expect(page.get_by_role("link", name="Main ledger")).to_be_visible()
    await expect(page.locator(".installation-card .status")).to_have_text("Active")
    await screenshots(page, storefront, "installs-list")

    # Uninstalling asks first; then the key stops working.
    await page.get_by_role("link", name="Main ledger").click()
    await page.get_by_role("link", name="Uninstall…").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Uninstall Main ledger?")
    await screenshots(page, storefront, "installs-uninstall")
    await page.get_by_role("button", name="Uninstall Main ledger").click()
    await expect(page.locator("#status .status")).to_have_text("Uninstalled", timeout=15_000)
    await screenshots(page, storefront, "installs-installation-uninstalled")
    assert "installation.uninstalled" in cat.webhooks
    async with httpx.AsyncClient(base_url=storefront.base, timeout=10) as app:
        # The proxy remembers an installation for a few seconds (its context cache).
        for _ in range(60):
            refused = await app.get(f"/api/v1/proxy/{installation_id}/balances/u_42", headers=bearer(key))
            if refused.status_code != 200:
                break
            await asyncio.sleep(0.25)
        assert refused.status_code in (401, 409), refused.text

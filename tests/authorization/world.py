"""The people who call and the data they call on: made through the API, when first needed."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from PIL import Image
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.auth.conftest import Account, signed_up
from tests.authorization.matrix import METHODS, ROLES
from tests.catalog.conftest import VERSION, cat_body


@dataclass
class FakeCat:
    """The cat's API and webhook receiver on a real port."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cast:
    """One account per principal, shared by every route that cannot spoil it for the next."""

    accounts: dict[str, Account]
    spare: Account  # logged in and out by the session routes


def png(colour: str = "orange", size: tuple[int, int] = (128, 128)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def ok(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.request.method} {response.request.url.path}: {response.text}"
    return response.json() if response.content else None


@dataclass
class World:
    """Data for one route's calls, made when first asked for."""

    api: httpx.AsyncClient
    engine: AsyncEngine
    cast: Cast
    fake_cat: FakeCat
    # Principals who get an account of their own here (the route ends its sessions or changes it).
    fresh_people: frozenset[str] = frozenset()
    made: dict[str, Any] = field(default_factory=dict)

    async def account(self, principal: str) -> Account | None:
        if principal == "anonymous":
            return None
        if principal not in self.fresh_people:
            return self.cast.accounts[principal]
        key = f"account:{principal}"
        if key not in self.made:
            self.made[key] = await signed_up(self.api, roles=ROLES[principal], engine=self.engine)
        account: Account = self.made[key]
        return account

    async def headers(self, principal: str) -> dict[str, str]:
        account = await self.account(principal)
        return account.headers if account else {}

    async def _once(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        if key not in self.made:
            self.made[key] = await make()
        return self.made[key]

    async def as_(self, principal: str, method: str, url: str, **kwargs: Any) -> Any:
        return ok(await self.api.request(method, url, headers=await self.headers(principal), **kwargs))

    def version(self, label: str, *required: str) -> dict[str, Any]:
        permissions = [{"name": "points:read", "description": "Read", "required": True}]
        permissions += [{"name": p, "description": p, "required": True} for p in required]
        return {
            **VERSION,
            "version": label,
            "base_url": f"{self.fake_cat.url}/v1",
            "webhook_url": f"{self.fake_cat.url}/hooks",
            "permissions": permissions,
            "endpoints": [{"method": m, "path": "/points", "permission": "points:read"} for m in METHODS],
        }

    async def draft(self) -> str:
        async def make() -> str:
            slug: str = (await self.as_("publisher", "POST", "/api/v1/cats", json=cat_body()))["slug"]
            await self.as_("publisher", "POST", f"/api/v1/cats/{slug}/versions", json=self.version("1.0.0"))
            return slug

        return str(await self._once("draft", make))

    async def pending(self) -> str:
        async def make() -> str:
            slug = await self.draft()
            await self.as_("publisher", "POST", f"/api/v1/cats/{slug}/submit")
            return slug

        return str(await self._once("pending", make))

    async def published(self) -> str:
        """A live cat at version 1.0.0."""

        async def make() -> str:
            slug: str = (await self.as_("publisher", "POST", "/api/v1/cats", json=cat_body()))["slug"]
            await self.as_("publisher", "POST", f"/api/v1/cats/{slug}/versions", json=self.version("1.0.0"))
            await self.as_("publisher", "POST", f"/api/v1/cats/{slug}/submit")
            await self.as_("admin", "POST", f"/api/v1/cats/{slug}/approve")
            return slug

        return str(await self._once("published", make))

    async def newer_version(self, label: str, *required: str) -> str:
        """Another published version of the live cat: an upgrade, asking for ``required`` too."""

        async def make() -> str:
            slug = await self.published()
            url = f"/api/v1/cats/{slug}/versions"
            await self.as_("publisher", "POST", url, json=self.version(label, *required))
            await self.as_("publisher", "POST", f"{url}/{label}/publish")
            return label

        return str(await self._once(f"version:{label}", make))

    async def suspended_cat(self) -> str:
        async def make() -> str:
            slug = await self.published()
            await self.as_("admin", "POST", f"/api/v1/cats/{slug}/suspend", json={"reason": "Checking"})
            return slug

        return str(await self._once("suspended_cat", make))

    async def draft_version(self) -> tuple[str, str]:
        async def make() -> tuple[str, str]:
            slug = await self.published()
            await self.as_("publisher", "POST", f"/api/v1/cats/{slug}/versions", json=self.version("2.0.0"))
            return slug, "2.0.0"

        found: tuple[str, str] = await self._once("draft_version", make)
        return found

    async def screenshot(self) -> tuple[str, str]:
        async def make() -> tuple[str, str]:
            slug = await self.published()
            added = await self.as_(
                "publisher", "POST", f"/api/v1/cats/{slug}/screenshots", content=png("teal", (320, 200))
            )
            return slug, added["id"]

        found: tuple[str, str] = await self._once("screenshot", make)
        return found

    async def draft_image(self) -> str:
        async def make() -> str:
            slug = await self.draft()
            icon = await self.as_(
                "publisher", "PUT", f"/api/v1/cats/{slug}/icon", content=png(f"#{uuid.uuid4().hex[:6]}")
            )
            return str(icon["url"]).rsplit("/", 1)[1]

        return str(await self._once("draft_image", make))

    async def review(self) -> tuple[str, str]:
        async def make() -> tuple[str, str]:
            slug = await self.published()
            body = {"rating": 4, "title": "Good", "body": "Does what it says."}
            return slug, (await self.as_("owner", "POST", f"/api/v1/cats/{slug}/reviews", json=body))["id"]

        found: tuple[str, str] = await self._once("review", make)
        return found

    async def hidden_review(self) -> tuple[str, str]:
        async def make() -> tuple[str, str]:
            slug, review = await self.review()
            await self.as_("admin", "POST", f"/api/v1/cats/{slug}/reviews/{review}/hide", json={"reason": "Spam"})
            return slug, review

        found: tuple[str, str] = await self._once("hidden_review", make)
        return found

    async def oauth_cat(self) -> str:
        """A live cat whose credentials come from an OAuth 2.0 provider (the fake cat), its client set."""

        async def make() -> str:
            slug: str = (await self.as_("publisher", "POST", "/api/v1/cats", json=cat_body()))["slug"]
            spec = self.version("1.0.0")
            spec["credentials"] = {
                "type": "oauth2",
                "authorization_url": f"{self.fake_cat.url}/oauth/authorize",
                "token_url": f"{self.fake_cat.url}/oauth/token",
            }
            spec["settings_schema"] = {"type": "object", "properties": {"team": {"type": "string"}}}
            await self.as_("publisher", "POST", f"/api/v1/cats/{slug}/versions", json=spec)
            client = {"client_id": "cathouse", "client_secret": "client-secret"}
            await self.as_("publisher", "PUT", f"/api/v1/cats/{slug}/oauth-client", json=client)
            await self.as_("publisher", "POST", f"/api/v1/cats/{slug}/submit")
            await self.as_("admin", "POST", f"/api/v1/cats/{slug}/approve")
            return slug

        return str(await self._once("oauth_cat", make))

    async def oauth_installation(self) -> str:
        """The owner's installation of the OAuth cat, waiting for the owner to grant access."""

        async def make() -> str:
            body = {
                "cat": await self.oauth_cat(),
                "name": f"OAuth {uuid.uuid4().hex[:6]}",
                "permissions": ["points:read"],
            }
            installation_id: str = (await self.as_("owner", "POST", "/api/v1/installations", json=body))["id"]
            return installation_id

        return str(await self._once("oauth_installation", make))

    async def oauth_state(self) -> str:
        """A state the owner's authorization started, as the provider sends it back."""
        installation_id = await self.oauth_installation()
        url = f"/api/v1/installations/{installation_id}/oauth/authorize"
        started = await self.api.get(url, headers=await self.headers("owner"))
        assert started.status_code == 302, started.text
        return parse_qs(urlsplit(started.headers["location"]).query)["state"][0]

    async def installation(self) -> str:
        """The owner's installation of the live cat, active: provisioned through its webhook."""

        async def make() -> str:
            slug = await self.published()
            body = {
                "cat": slug,
                "version": "1.0.0",
                "name": f"Main {uuid.uuid4().hex[:6]}",
                "permissions": ["points:read"],
                "settings": {"team": "blue"},
                "secrets": {"api_key": "sk-live-0123456789"},
            }
            installation_id: str = (await self.as_("owner", "POST", "/api/v1/installations", json=body))["id"]
            await self.wait_for(installation_id, "active")
            return installation_id

        return str(await self._once("installation", make))

    async def wait_for(self, installation_id: str, status: str) -> None:
        for _ in range(400):
            found = await self.as_("owner", "GET", f"/api/v1/installations/{installation_id}")
            if found["status"] == status:
                return
            await asyncio.sleep(0.025)
        raise AssertionError(f"installation {installation_id} is {found['status']}, not {status}")

    async def installation_in(self, status: str) -> str:
        async def make() -> str:
            installation_id = await self.installation()
            url = f"/api/v1/installations/{installation_id}"
            if status == "suspended":
                await self.as_("owner", "POST", f"{url}/suspend", json={"reason": "Holiday"})
            elif status == "permissions_pending":
                await self.newer_version("1.2.0", "points:write")
                await self.as_("owner", "POST", f"{url}/upgrade", json={"version": "1.2.0"})
            elif status == "failed":  # as a webhook given up on leaves it
                async with self.engine.begin() as conn:
                    await conn.execute(
                        text("UPDATE installation.installations SET status = 'failed' WHERE id = :id"),
                        {"id": uuid.UUID(installation_id)},
                    )
            return installation_id

        return str(await self._once(f"installation:{status}", make))

    async def api_key(self) -> tuple[str, str]:
        async def make() -> tuple[str, str]:
            installation_id = await self.installation()
            url = f"/api/v1/installations/{installation_id}/api-keys"
            return installation_id, (await self.as_("owner", "POST", url, json={"name": "ci"}))["id"]

        found: tuple[str, str] = await self._once("api_key", make)
        return found

    async def delivery(self) -> tuple[str, str]:
        async def make() -> tuple[str, str]:
            installation_id = await self.installation()
            deliveries = await self.as_("owner", "GET", f"/api/v1/installations/{installation_id}/deliveries")
            assert deliveries, "provisioning sent no webhook"
            return installation_id, deliveries[0]["id"]

        found: tuple[str, str] = await self._once("delivery", make)
        return found

    async def target(self, disabled: bool = False) -> str:
        """The owner's account, as an admin's move on it finds it."""
        owner = await self.account("owner")
        assert owner is not None
        if disabled:
            await self.as_("admin", "POST", f"/api/v1/users/{owner.id}/disable")
            await self._refused(owner)
        return owner.id

    async def _refused(self, account: Account) -> None:
        """Wait until every check of ``account``'s token knows it is disabled (a second or so):
        until then the owner's own call would be judged on the roles in the token, after it on
        the account, and the matrix could not say which answer a caller gets."""
        deadline = asyncio.get_running_loop().time() + 10
        while (await self.api.get("/api/v1/installations", headers=account.headers)).status_code != 401:
            assert asyncio.get_running_loop().time() < deadline, "the disabled account's token still works"
            await asyncio.sleep(0.05)

"""People signed in to the pages of one in-process platform, each with a cookie jar of their own.

The console and admin tests need several people at once (a developer, another developer, an
admin, a plain user): each is an account made through the API (given its roles in the database,
as the catalog's tests do) and signed in through the sign-in page, so their client carries the
session cookie a browser would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.services import create_platform_app
from tests.auth.conftest import Account, signed_up


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the page carries no CSRF token"
    return found.group(1)


@dataclass
class Person:
    account: Account
    web: httpx.AsyncClient  # the pages, with this person's session cookie

    async def form(self, page: str) -> str:
        """The CSRF token of ``page`` as this person sees it."""
        return csrf(await self.web.get(page))


@dataclass
class Site:
    api: httpx.AsyncClient  # no cookies: calls carry a person's bearer token when they need one
    transport: httpx.AsyncBaseTransport
    engine: AsyncEngine
    stack: AsyncExitStack

    async def person(self, *roles: str) -> Person:
        account = await signed_up(self.api, roles=roles, engine=self.engine)
        web = await self.stack.enter_async_context(
            httpx.AsyncClient(transport=self.transport, base_url="http://testserver")
        )
        page = await web.get("/sign-in")
        signed = await web.post(
            "/sign-in", data={"csrf_token": csrf(page), "email": account.email, "password": account.password}
        )
        assert signed.status_code == 303, signed.text
        return Person(account, web)


@asynccontextmanager
async def site(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Site]:
    app = create_platform_app(settings)
    async with app.router.lifespan_context(app), AsyncExitStack() as stack:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        api = await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://testserver"))
        yield Site(api, transport, engine, stack)

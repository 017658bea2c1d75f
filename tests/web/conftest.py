"""The browser tests' fixtures: one platform and one Chromium for the run (see ``browsing``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import truncate_all
from tests.support import cathouse_env, free_port, own_database, start_cathouse, terminate_and_wait, wait_healthy
from tests.web.browsing import Storefront, chromium, create_admin, screenshot_directory

STOREFRONT_SETTINGS = {
    "CATHOUSE_CATALOG__FACET_TTL": "0",
    # A test's own cat runs on loopback over plain HTTP: its API (for the proxy) and its webhook.
    "CATHOUSE_CATALOG__ALLOW_HTTP": "true",
    "CATHOUSE_PROXY__ALLOW_HOSTS": '["127.0.0.0/8"]',
    "CATHOUSE_INSTALLATION__WEBHOOK_ALLOW_PRIVATE": "true",
    # A test's OAuth provider runs on loopback too (its token endpoint, reached by the platform).
    "CATHOUSE_INSTALLATION__OAUTH_ALLOW_PRIVATE": "true",
    # Every person of every browser test signs up from 127.0.0.1.
    "CATHOUSE_AUTH__REGISTER_RATE": "1000/hour",
}


@pytest.fixture(scope="module", autouse=True)
async def _leaves_no_rows(engine: AsyncEngine) -> AsyncIterator[None]:
    """What a module of page tests wrote to the run's database goes with it, so a later module
    (a search by a cat's name, say) does not meet this module's cats. The browser tests' platform
    has a database of its own."""
    yield
    await truncate_all(engine)


@pytest.fixture(scope="session")
async def storefront(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Storefront]:
    if chromium() is None:
        pytest.skip("no Chromium: install Debian's `chromium` package or set CATHOUSE_CHROMIUM")
    work = tmp_path_factory.mktemp("web")
    port = free_port()
    async with own_database(server_url, "cathouse_web") as database_url:
        base = f"http://127.0.0.1:{port}"
        # The address the browser uses: a provider sends it back to <base>/api/v1/oauth/callback.
        settings = {**STOREFRONT_SETTINGS, "CATHOUSE_PUBLIC_URL": base}
        env = cathouse_env(work, settings, database_url=database_url)
        log = work / "up.log"
        proc = start_cathouse(["up", "--demo", "--port", str(port)], env, log)
        try:
            await asyncio.to_thread(wait_healthy, f"{base}/api/v1/health", proc, log, 120)
            admin = await asyncio.to_thread(create_admin, env)
            yield Storefront(base=base, shots=screenshot_directory(), admin=admin, env=env, log=log)
        finally:
            await asyncio.to_thread(terminate_and_wait, proc)


@pytest.fixture(scope="session")
async def browser(storefront: Storefront) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def new_page(browser: Browser) -> AsyncIterator[Callable[[], Awaitable[Page]]]:
    """``await new_page()``: a page in a context of its own (a person of their own), desktop-sized."""
    contexts = []

    async def make() -> Page:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        return await context.new_page()

    yield make
    for context in contexts:
        await context.close()


@pytest.fixture
async def page(new_page: Callable[[], Awaitable[Page]]) -> Page:
    return await new_page()

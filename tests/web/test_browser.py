"""A visitor in a real browser: Debian's Chromium driven by Playwright, against ``cathouse up``.

The platform runs as its own process with the demo cats, on a database of its own; a review
and the publisher's reply are written through the API first. One browser serves the module.
Screenshots of every page, 390 and 1280 pixels wide, go to ``CATHOUSE_SCREENSHOTS`` or
``test-output/screenshots`` (not committed).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support import cathouse_env, free_port, own_database, start_cathouse, terminate_and_wait, wait_healthy

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
WIDTHS = (390, 1280)
ADMIN_PASSWORD = "a long storefront admin passphrase"
VISITOR_PASSWORD = "correct horse battery staple"
REVIEW_TITLE = "Our weekly board in an afternoon"
REPLY = "Thank you! Seasons arrive in the next version."


def chromium() -> str | None:
    """Debian's Chromium, or the one ``CATHOUSE_CHROMIUM`` names."""
    configured = os.environ.get("CATHOUSE_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@dataclass(frozen=True)
class Storefront:
    base: str
    shots: Path


@pytest.fixture(scope="module")
def shots() -> Path:
    """Where the screenshots go: kept after the run (pytest's own directory is removed)."""
    directory = Path(os.environ.get("CATHOUSE_SCREENSHOTS") or REPO / "test-output" / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
async def storefront(
    server_url: str, shots: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Storefront]:
    if chromium() is None:
        pytest.skip("no Chromium: install Debian's `chromium` package or set CATHOUSE_CHROMIUM")
    work = tmp_path_factory.mktemp("web")
    port = free_port()
    async with own_database(server_url, "cathouse_web") as database_url:
        env = cathouse_env(work, {"CATHOUSE_CATALOG__FACET_TTL": "0"}, database_url=database_url)
        log = work / "up.log"
        proc = start_cathouse(["up", "--demo", "--port", str(port)], env, log)
        try:
            base = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(wait_healthy, f"{base}/api/v1/health", proc, log, 120)
            await asyncio.to_thread(_review_and_reply, base, env)
            yield Storefront(base=base, shots=shots)
        finally:
            await asyncio.to_thread(terminate_and_wait, proc)


def _review_and_reply(base: str, env: dict[str, str]) -> None:
    """A visitor reviews Leaderboard Live; an admin answers for the platform, which publishes it."""
    admin = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    subprocess.run(
        [sys.executable, "-m", "cathouse", "users", "create-admin", "--email", admin, "--password-stdin"],
        input=f"{ADMIN_PASSWORD}\n".encode(),
        env=env,
        check=True,
        capture_output=True,
    )
    visitor = f"visitor-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=base, timeout=10) as api:
        api.post(
            "/api/v1/auth/register",
            json={"email": visitor, "password": VISITOR_PASSWORD, "display_name": "Robin"},
        ).raise_for_status()
        token = _login(api, visitor, VISITOR_PASSWORD)
        review = api.post(
            "/api/v1/cats/leaderboard-live/reviews",
            json={"rating": 4, "title": REVIEW_TITLE, "body": "Set up in an afternoon.\nRanks are right."},
            headers={"Authorization": f"Bearer {token}"},
        )
        review.raise_for_status()
        api.put(
            f"/api/v1/cats/leaderboard-live/reviews/{review.json()['id']}/reply",
            json={"body": REPLY},
            headers={"Authorization": f"Bearer {_login(api, admin, ADMIN_PASSWORD)}"},
        ).raise_for_status()


def _login(api: httpx.Client, email: str, password: str) -> str:
    response = api.post("/api/v1/auth/login", json={"email": email, "password": password})
    response.raise_for_status()
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
async def browser(storefront: Storefront) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    yield await context.new_page()
    await context.close()


async def _screenshots(page: Page, shots: Path, name: str) -> None:
    """The page as it is now, at a phone's width and a desktop's."""
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=shots / f"{name}-{width}.png", full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


async def test_a_visitor_searches_with_a_typo_filters_opens_a_cat_and_reads_its_reviews(
    storefront: Storefront, page: Page
) -> None:
    await page.goto(storefront.base + "/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Gamification integrations")
    await _screenshots(page, storefront.shots, "browse")

    await page.get_by_label("Search cats").fill("leaderbord")
    await page.get_by_label("Search cats").press("Enter")
    # The URL holds the search (and the sort left at its default), so it can be shared.
    await expect(page).to_have_url(f"{storefront.base}/?q=leaderbord&sort=")
    results = page.get_by_role("region", name="Cats")
    await expect(results.get_by_role("heading", level=3)).to_have_text(["Leaderboard Live"])
    await _screenshots(page, storefront.shots, "search")

    # The facet narrows what is shown to the cats it counts.
    await page.goto(storefront.base + "/")
    facet = page.get_by_role("complementary", name="Filters").get_by_role("link", name="Leaderboards")
    await expect(facet).to_contain_text("1")
    await facet.click()
    await expect(page).to_have_url(f"{storefront.base}/?category=leaderboards")
    await expect(results.get_by_role("heading", level=3)).to_have_text(["Leaderboard Live"])

    await results.get_by_role("link", name="Leaderboard Live").click()
    await expect(page).to_have_url(f"{storefront.base}/cats/leaderboard-live")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Leaderboard Live")
    reviews = page.get_by_role("region", name="Reviews")
    review = reviews.get_by_role("article", name=REVIEW_TITLE)
    await expect(review).to_contain_text("Robin")
    await expect(review).to_contain_text("Set up in an afternoon.")
    await expect(review.get_by_label("4 out of 5")).to_be_visible()
    await expect(review).to_contain_text(REPLY)
    # The histogram counts the one review, under its star.
    await expect(page.get_by_role("row", name="4 ★")).to_contain_text("1")
    permissions = page.get_by_role("region", name="Permissions it asks for")
    await expect(permissions).to_contain_text("leaderboards:read")
    await expect(permissions).to_contain_text("Read boards, ranks and past periods.")
    await expect(page.get_by_role("link", name="Install")).to_have_attribute(
        "href", "/sign-in?next=/cats/leaderboard-live"
    )
    await _screenshots(page, storefront.shots, "cat")


async def test_more_brings_the_next_cards_in_place(storefront: Storefront, page: Page) -> None:
    await page.goto(storefront.base + "/?sort=name&limit=3")
    cards = page.get_by_role("region", name="Cats").get_by_role("heading", level=3)
    await expect(cards).to_have_count(3)
    await page.get_by_role("link", name="More cats").click()
    await expect(cards).to_have_count(6)
    # htmx added them to this page: the URL still holds the query, not a cursor.
    assert page.url == f"{storefront.base}/?sort=name&limit=3"
    names = await cards.all_inner_texts()
    assert names == sorted(names, key=str.casefold)


async def test_on_a_phone_the_cards_stack_in_one_column(storefront: Storefront, page: Page) -> None:
    await page.set_viewport_size({"width": 390, "height": 900})
    await page.goto(storefront.base + "/")
    boxes = [await card.bounding_box() for card in await page.locator(".card").all()]
    assert len(boxes) >= 2
    assert len({round(box["x"]) for box in boxes if box}) == 1


async def test_the_keyboard_reaches_the_content_first(storefront: Storefront, page: Page) -> None:
    await page.goto(storefront.base + "/cats/leaderboard-live")
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()


async def test_errors_are_shown_in_words(storefront: Storefront, page: Page) -> None:
    response = await page.goto(storefront.base + "/cats/no-such-cat")
    assert response is not None
    assert response.status == 404
    await expect(page.get_by_role("alert")).to_contain_text("There is no such cat.")
    await _screenshots(page, storefront.shots, "not-found")

    response = await page.goto(storefront.base + "/?sort=loudest")
    assert response is not None
    assert response.status == 422
    await expect(page.get_by_role("alert")).to_contain_text("sort: Input should be 'relevance'")
    # The search box still holds what was asked, to correct it.
    await expect(page.get_by_label("Sort by")).to_be_visible()


@pytest.mark.parametrize("path", ["/", "/?q=leaderbord&category=leaderboards", "/cats/leaderboard-live", "/sign-in"])
async def test_headings_are_in_order_and_every_field_has_a_label(storefront: Storefront, page: Page, path: str) -> None:
    await page.goto(storefront.base + path)
    levels = await page.eval_on_selector_all("h1, h2, h3, h4, h5, h6", "hs => hs.map(h => Number(h.tagName[1]))")
    assert levels[0] == 1
    assert levels.count(1) == 1
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), levels
    unlabelled = await page.eval_on_selector_all(
        "input:not([type=hidden]), select, textarea", "fields => fields.filter(f => f.labels.length === 0).length"
    )
    assert unlabelled == 0

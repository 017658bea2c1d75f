"""The activity page, live, in a real Chromium against ``cathouse up --demo``: a review written
through the API while the page is open appears on it without a reload, and is announced."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.web.browsing import Storefront, screenshots, sign_up

pytestmark = pytest.mark.e2e

REVIEWER_PASSWORD = "a reviewer's passphrase, long enough"
# A demo cat the other browser tests do not count the reviews of.
CAT = "quest-board"


async def _review_through_the_api(storefront: Storefront, name: str) -> None:
    email = f"reviewer-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=storefront.base, timeout=10) as api:
        registered = await api.post(
            "/api/v1/auth/register", json={"email": email, "password": REVIEWER_PASSWORD, "display_name": name}
        )
        registered.raise_for_status()
        pair = await api.post("/api/v1/auth/login", json={"email": email, "password": REVIEWER_PASSWORD})
        pair.raise_for_status()
        review = await api.post(
            f"/api/v1/cats/{CAT}/reviews",
            json={"rating": 5, "title": "Quests our players finish"},
            headers={"Authorization": f"Bearer {pair.json()['access_token']}"},
        )
        review.raise_for_status()


async def test_a_new_review_appears_on_the_open_activity_page_without_a_reload(
    storefront: Storefront, page: Page
) -> None:
    await sign_up(page, storefront, "Kit")
    await page.get_by_role("navigation", name="Site").get_by_role("link", name="Activity").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Activity")
    entries = page.locator("#entries > li")
    await expect(entries.first).to_be_visible()  # the demo cats' publication, at least
    await expect(page.get_by_text("New entries appear at the top as they happen.")).to_be_visible()
    before = await entries.count()
    # Marks this document: a reload would lose it.
    await page.evaluate("window.sameDocument = true")

    name = f"Reviewer {uuid.uuid4().hex[:6]}"
    await _review_through_the_api(storefront, name)

    await expect(entries.first).to_contain_text(f"{name} reviewed Quest Board", timeout=15_000)
    await expect(entries.first.get_by_role("link", name="Quest Board")).to_have_attribute("href", f"/cats/{CAT}")
    await expect(entries).to_have_count(before + 1)
    await expect(page.get_by_role("status")).to_have_text("1 new entry at the top.")
    assert await page.evaluate("window.sameDocument") is True
    await screenshots(page, storefront, "activity")

    await page.get_by_role("link", name="Yours").click()
    await expect(entries.first).to_contain_text("You joined Cat House")
    await screenshots(page, storefront, "activity-mine")

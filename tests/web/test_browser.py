"""A visitor in a real browser: Debian's Chromium driven by Playwright, against ``cathouse up``.

The platform (``storefront``, shared by every browser test) runs as its own process with the
demo cats; a review and the publisher's reply are written through the API first. Screenshots
of every page, 390 and 1280 pixels wide, go to the run's screenshot directory.
"""

from __future__ import annotations

import itertools
import uuid

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.web.browsing import ADMIN_PASSWORD, Storefront, screenshots, sign_up

pytestmark = pytest.mark.e2e

VISITOR_PASSWORD = "correct horse battery staple"
REVIEW_TITLE = "Our weekly board in an afternoon"
REPLY = "Thank you! Seasons arrive in the next version."


@pytest.fixture(scope="module", autouse=True)
def _reviewed(storefront: Storefront) -> None:
    _review_and_reply(storefront)


def _review_and_reply(storefront: Storefront) -> None:
    """A visitor reviews Leaderboard Live; an admin answers for the platform, which publishes it."""
    visitor = f"visitor-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=storefront.base, timeout=10) as api:
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
            headers={"Authorization": f"Bearer {_login(api, storefront.admin, ADMIN_PASSWORD)}"},
        ).raise_for_status()


def _login(api: httpx.Client, email: str, password: str) -> str:
    response = api.post("/api/v1/auth/login", json={"email": email, "password": password})
    response.raise_for_status()
    return str(response.json()["access_token"])


async def test_a_visitor_searches_with_a_typo_filters_opens_a_cat_and_reads_its_reviews(
    storefront: Storefront, page: Page
) -> None:
    await page.goto(storefront.base + "/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Gamification integrations")
    await screenshots(page, storefront, "browse")

    await page.get_by_label("Search cats").fill("leaderbord")
    await page.get_by_label("Search cats").press("Enter")
    # The URL holds the search (and the sort left at its default), so it can be shared.
    await expect(page).to_have_url(f"{storefront.base}/?q=leaderbord&sort=")
    results = page.get_by_role("region", name="Cats")
    await expect(results.get_by_role("heading", level=3)).to_have_text(["Leaderboard Live"])
    await screenshots(page, storefront, "search")

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
    await expect(page.get_by_role("link", name="Install")).to_have_attribute("href", "/cats/leaderboard-live/install")
    await screenshots(page, storefront, "cat")
    # The reviews as a page of their own: what "More reviews" is without JavaScript.
    await page.goto(f"{storefront.base}/cats/leaderboard-live/reviews")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Reviews of Leaderboard Live")
    await expect(page.get_by_role("listitem").filter(has_text=REVIEW_TITLE)).to_be_visible()
    await screenshots(page, storefront, "reviews")


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
    await screenshots(page, storefront, "not-found")

    response = await page.goto(storefront.base + "/?sort=loudest")
    assert response is not None
    assert response.status == 422
    await expect(page.get_by_role("alert")).to_contain_text("sort: Input should be 'relevance'")
    # The search box still holds what was asked, to correct it.
    await expect(page.get_by_label("Sort by")).to_be_visible()


@pytest.mark.parametrize(
    "path", ["/", "/?q=leaderbord&category=leaderboards", "/cats/leaderboard-live", "/sign-in", "/sign-up"]
)
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


async def test_a_person_signs_up_changes_their_profile_and_signs_out(storefront: Storefront, page: Page) -> None:
    await page.goto(storefront.base + "/sign-in")
    await screenshots(page, storefront, "sign-in")
    await page.goto(storefront.base + "/sign-up")
    await screenshots(page, storefront, "sign-up")
    # A problem from the API shows next to its field, in words, with what was typed kept.
    await page.get_by_label("Your name").fill("Noor")
    await page.get_by_label("Email").fill("noor@example.com")
    await page.get_by_label("Password").fill("short")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#f-password-error")).to_contain_text("at least 8 characters")
    await expect(page.get_by_label("Your name")).to_have_value("Noor")

    await sign_up(page, storefront, "Noor", next="/profile")
    await expect(page).to_have_url(storefront.base + "/profile")
    await page.get_by_label("Display name").fill("Noor A.")
    await page.get_by_label("Language").fill("ar")
    await page.get_by_role("button", name="Save profile").click()
    await expect(page.get_by_role("status")).to_have_text("Your profile is saved.")
    await expect(page.get_by_role("navigation", name="Site").get_by_role("link", name="Noor A.")).to_be_visible()
    await screenshots(page, storefront, "profile")

    cookie = next(c for c in await page.context.cookies() if c["name"] == "cathouse_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    await page.goto(storefront.base + "/profile")
    await expect(page).to_have_url(storefront.base + "/sign-in?next=/profile")

"""A cat's way from a developer's console to the storefront, in a real browser.

A new account asks for the console and is told how to get the developer role; an admin finds the
account and grants it; the developer creates a cat, writes a version whose problem the page shows
under the line it concerns, fixes it, uploads an icon (a PNG made here) and submits the cat; the
admin approves it from the review queue; a visitor then finds it by searching the storefront.
Every page of the console and of the admin is photographed, and checked for headings in order
and labelled fields.
"""

from __future__ import annotations

import io
import itertools
import random
import string
from collections.abc import Awaitable, Callable

import pytest
from PIL import Image
from playwright.async_api import Page, expect

from cathouse.web.versions import EXAMPLE
from tests.web.browsing import ADMIN_PASSWORD, Storefront, screenshots, sign_in, sign_up

pytestmark = pytest.mark.e2e


def icon_png() -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", (256, 256), (242, 183, 5))
    image.paste((47, 91, 211), (64, 64, 192, 192))
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def check_and_photograph(page: Page, storefront: Storefront, name: str) -> None:
    """Headings in order under one h1, every field labelled; then the page's screenshots."""
    levels = await page.eval_on_selector_all("main h1, main h2, main h3, main h4", "hs => hs.map(h => +h.tagName[1])")
    assert levels[:1] == [1], (name, levels)
    assert levels.count(1) == 1, (name, levels)
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), (name, levels)
    unlabelled = await page.eval_on_selector_all(
        "input:not([type=hidden]), select, textarea", "fields => fields.filter(f => f.labels.length === 0).length"
    )
    assert unlabelled == 0, name
    await screenshots(page, storefront, name)


async def test_a_developer_publishes_a_cat_an_admin_approves_it_and_a_visitor_finds_it(
    storefront: Storefront, new_page: Callable[[], Awaitable[Page]]
) -> None:
    developer, admin, visitor = await new_page(), await new_page(), await new_page()  # a context each
    word = "".join(random.choices(string.ascii_lowercase, k=10))  # noqa: S311 - a name, not a secret
    name, slug = f"Streak {word.capitalize()}", f"streak-{word}"

    email = await sign_up(developer, storefront, "Dana Dev")
    await developer.goto(storefront.base + "/console")
    await expect(developer.get_by_role("alert")).to_contain_text("needs the developer role")
    await check_and_photograph(developer, storefront, "console-no-role")

    # The admin finds the account and grants the role.
    await sign_in(admin, storefront, storefront.admin, ADMIN_PASSWORD)
    await admin.get_by_role("navigation", name="Site").locator('a[href="/admin"]').click()
    await admin.get_by_role("link", name="Users").click()
    await admin.get_by_label("Find a user by email or name").fill(email)
    await admin.get_by_role("button", name="Find").click()
    person = admin.locator("li.user", has_text=email)
    await person.get_by_label("Developer").check()
    await person.get_by_role("button", name="Save roles").click()
    await expect(admin.get_by_role("status")).to_have_text("The roles are saved.")
    await expect(admin.locator("li.user", has_text=email).get_by_label("Developer")).to_be_checked()
    await check_and_photograph(admin, storefront, "admin-users")

    # The developer's console opens without signing in again.
    await developer.reload()
    await expect(developer.get_by_role("heading", level=1)).to_have_text("Developer console")
    await check_and_photograph(developer, storefront, "console")
    await developer.get_by_role("link", name="Create a cat").click()
    await developer.get_by_label("Slug").fill(slug)
    await developer.get_by_label("Name").fill(name)
    await developer.get_by_label("Summary").fill("Daily streaks for your users, with freezes and reminders.")
    await developer.get_by_label("Category").select_option("points")
    await developer.get_by_label("Tags").fill("streaks, habits")
    await developer.get_by_label("Description").fill("# Streaks\n\nKeep your users coming back every day.")
    await check_and_photograph(developer, storefront, "console-new")
    await developer.get_by_role("button", name="Create the cat").click()
    await expect(developer.get_by_role("status")).to_contain_text("created as a draft")

    # A version naming a permission it does not declare: the problem sits under the endpoint's line.
    await developer.get_by_role("link", name="Add a version").click()
    spec = developer.get_by_label("The version, in YAML")
    await expect(spec).to_have_value(EXAMPLE)
    await spec.fill(EXAMPLE.replace('permission: "points:read"}', 'permission: "points:write"}'))
    await developer.get_by_role("button", name="Check and add the version").click()
    line = developer.locator("#line-7")
    await expect(line.locator(".line-problem")).to_contain_text("'points:write' is not declared in permissions")
    await expect(line.locator("code").first).to_contain_text('permission: "points:write"')
    await expect(developer.locator(".line-problem")).to_have_count(1)
    await check_and_photograph(developer, storefront, "console-version-problem")
    await spec.fill(EXAMPLE)
    await developer.get_by_role("button", name="Check and add the version").click()
    await expect(developer.get_by_role("status")).to_have_text("The version is added.")

    await developer.get_by_label("Icon", exact=True).set_input_files(
        {"name": "icon.png", "mimeType": "image/png", "buffer": icon_png()}
    )
    await developer.get_by_role("button", name="Upload the icon").click()
    await expect(developer.get_by_role("status")).to_have_text("The icon is uploaded.")
    await developer.get_by_role("button", name="Submit for review").click()
    await expect(developer.get_by_role("status")).to_contain_text("submitted for review")
    await expect(developer.locator("header .status")).to_have_text("In review")
    # The draft's icon loads for its publisher (the image read takes the session cookie).
    await expect(developer.locator("header img.icon")).to_have_js_property("naturalWidth", 256)
    await check_and_photograph(developer, storefront, "console-cat")

    # The admin approves it from the queue.
    await admin.goto(storefront.base + "/admin")
    waiting = admin.locator("li.card", has_text=name)
    await expect(waiting.locator("img.icon")).to_have_js_property("naturalWidth", 256)
    await check_and_photograph(admin, storefront, "admin-queue")
    await waiting.get_by_role("button", name=f"Approve {name}").click()
    await expect(admin.get_by_role("status")).to_have_text("The cat is approved and public.")
    await admin.goto(f"{storefront.base}/admin/cats/{slug}")
    await expect(admin.get_by_role("button", name="Suspend")).to_be_visible()
    await check_and_photograph(admin, storefront, "admin-cat")

    # A visitor finds it.
    await visitor.goto(storefront.base + "/")
    await visitor.get_by_label("Search cats").fill(word)
    await visitor.get_by_label("Search cats").press("Enter")
    found = visitor.get_by_role("region", name="Cats").get_by_role("link", name=name)
    await expect(found).to_be_visible()
    await found.click()
    await expect(visitor.get_by_role("heading", level=1)).to_have_text(name)

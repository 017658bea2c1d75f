"""What the browser tests share: the platform they drive, Chromium, and the pages' screenshots.

The platform (``cathouse up --demo``) runs once for every browser test, as its own process on a
database of its own, with an admin account; Chromium is Debian's (or ``CATHOUSE_CHROMIUM``), one
browser for the run, a fresh context (cookies, storage) per test or per person in a test.
Screenshots of every page, 390 and 1280 pixels wide, go to ``CATHOUSE_SCREENSHOTS`` or
``test-output/screenshots`` (not committed), so a person can look at them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

REPO = Path(__file__).resolve().parents[2]
WIDTHS = (390, 1280)
ADMIN_PASSWORD = "a long storefront admin passphrase"
PASSWORD = "a storefront passphrase of some length"


def chromium() -> str | None:
    """Debian's Chromium, or the one ``CATHOUSE_CHROMIUM`` names."""
    configured = os.environ.get("CATHOUSE_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def screenshot_directory() -> Path:
    """Where the screenshots go: kept after the run (pytest's own directory is removed)."""
    directory = Path(os.environ.get("CATHOUSE_SCREENSHOTS") or REPO / "test-output" / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@dataclass(frozen=True)
class Storefront:
    base: str
    shots: Path
    admin: str  # the admin's email (password: ADMIN_PASSWORD)
    env: dict[str, str] = field(repr=False)
    log: Path


def create_admin(env: dict[str, str]) -> str:
    admin = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    subprocess.run(
        [sys.executable, "-m", "cathouse", "users", "create-admin", "--email", admin, "--password-stdin"],
        input=f"{ADMIN_PASSWORD}\n".encode(),
        env=env,
        check=True,
        capture_output=True,
    )
    return admin


async def screenshots(page: Page, storefront: Storefront, name: str) -> None:
    """The page as it is now, at a phone's width and a desktop's."""
    size = page.viewport_size or {"width": 1280, "height": 900}
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=storefront.shots / f"{name}-{width}.png", full_page=True)
    await page.set_viewport_size(size)


async def sign_up(page: Page, storefront: Storefront, name: str, *, next: str | None = None) -> str:
    """A new account made through the sign-up page, signed in in ``page``'s context: its email."""
    email = f"{name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto(storefront.base + "/sign-up" + (f"?next={next}" if next else ""))
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("navigation", name="Site").get_by_role("link", name=name)).to_be_visible()
    return email


async def sign_in(page: Page, storefront: Storefront, email: str, password: str = PASSWORD) -> None:
    await page.goto(storefront.base + "/sign-in")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def api_token(api: httpx.AsyncClient, email: str, password: str) -> str:
    """An access token for ``email``, through the API the pages call."""
    answer = await api.post("/api/v1/auth/login", json={"email": email, "password": password})
    answer.raise_for_status()
    return str(answer.json()["access_token"])

"""The developer console through its pages: a cat created, its version checked line by line, its
images, its review; each developer sees their own cats only; forms without their token change nothing.

The whole platform runs in the process on the test database; each person has a cookie jar of
their own (``tests.web.people``).
"""

from __future__ import annotations

import html
import io
import json
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.web.versions import EXAMPLE
from tests.catalog.conftest import draft
from tests.web.people import Person, Site, csrf, site


@pytest.fixture
async def web(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Site]:
    async with site(settings, engine) as opened:
        yield opened


def png(size: int = 256) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (47, 91, 211)).save(buffer, format="PNG")
    return buffer.getvalue()


async def create_cat(developer: Person, slug: str | None = None) -> str:
    slug = slug or f"console-{uuid.uuid4().hex[:8]}"
    created = await developer.web.post(
        "/console/new",
        data={
            "csrf_token": await developer.form("/console/new"),
            "slug": slug,
            "name": "Streak Keeper",
            "summary": "Daily streaks for your users, with freezes.",
            "category": "points",
            "tags": "streaks, habits",
            "description": "# Streaks\n\nKeep them going.",
        },
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"] == f"/console/cats/{slug}?done=created"
    return slug


def line_problems(page: str) -> dict[int, list[str]]:
    """The problems the page shows under each numbered line of the YAML."""
    found: dict[int, list[str]] = {}
    for number, body in re.findall(r'<li id="line-(\d+)" data-line="\d+"[^>]*>(.*?)</li>', page, re.S):
        problems = re.findall(r'<p class="line-problem">(.*?)</p>', body, re.S)
        if problems:
            found[int(number)] = [html.unescape(re.sub(r"<[^>]+>", "", p)) for p in problems]
    return found


async def test_a_version_s_problems_are_shown_under_their_lines_and_the_fixed_version_is_added(web: Site) -> None:
    developer = await web.person("developer")
    slug = await create_cat(developer)
    form = await developer.web.get(f"/console/cats/{slug}/versions/new")
    assert form.status_code == 200
    assert "rate_limit_per_minute: 600" in form.text  # a first version starts from a working example

    # A field out of range: its own line. (The version's cross-checks wait for every field to be right.)
    lines = EXAMPLE.splitlines()
    assert lines[12] == "rate_limit_per_minute: 600"
    out_of_range = "\n".join([*lines[:12], "rate_limit_per_minute: 0", *lines[13:]])
    checked = await developer.web.post(
        f"/console/cats/{slug}/versions/new", data={"csrf_token": csrf(form), "spec": out_of_range}
    )
    assert checked.status_code == 422, checked.text
    shown = line_problems(checked.text)
    assert list(shown) == [13], shown
    assert "Line 13 · rate_limit_per_minute: Input should be greater than or equal to 1" in shown[13][0]

    # An endpoint naming a permission the version does not declare: the endpoint's line, not the version's.
    assert lines[6].strip().startswith("- {method: GET")
    undeclared = EXAMPLE.replace('permission: "points:read"}', 'permission: "points:write"}')
    checked = await developer.web.post(
        f"/console/cats/{slug}/versions/new", data={"csrf_token": csrf(form), "spec": undeclared}
    )
    assert checked.status_code == 422, checked.text
    shown = line_problems(checked.text)
    assert list(shown) == [7], shown
    assert "endpoints.0.permission: 'points:write' is not declared in permissions" in shown[7][0]
    assert "points:write" in checked.text.split('id="f-spec"')[1]  # what was typed stays to be fixed

    syntax = await developer.web.post(
        f"/console/cats/{slug}/versions/new",
        data={"csrf_token": csrf(form), "spec": "version: 1.0.0\nbase_url: [unclosed\ncredentials: {}\n"},
    )
    assert syntax.status_code == 422
    assert any("YAML error" in p for ps in line_problems(syntax.text).values() for p in ps)

    fixed = await developer.web.post(
        f"/console/cats/{slug}/versions/new", data={"csrf_token": csrf(form), "spec": EXAMPLE}
    )
    assert fixed.status_code == 303, fixed.text
    assert fixed.headers["location"] == f"/console/cats/{slug}?done=version"
    listed = await web.api.get(f"/api/v1/cats/{slug}/versions", headers=developer.account.headers)
    assert [(v["version"], v["endpoints"][0]["permission"]) for v in listed.json()] == [("1.0.0", "points:read")]

    again = await developer.web.post(
        f"/console/cats/{slug}/versions/new", data={"csrf_token": csrf(form), "spec": EXAMPLE}
    )
    assert again.status_code == 409
    assert "exists already" in line_problems(again.text)[1][0]  # on the version's own line


async def test_a_developer_uploads_an_icon_submits_and_sees_the_secret_only_on_demand(web: Site) -> None:
    developer = await web.person("developer")
    slug = await create_cat(developer)
    page = await developer.web.get(f"/console/cats/{slug}?done=created")
    token = csrf(page)
    refused = await developer.web.post(f"/console/cats/{slug}/submit", data={"csrf_token": token})
    assert refused.status_code == 409  # no version yet: the API's words, on the page
    assert "version" in refused.text

    await developer.web.post(f"/console/cats/{slug}/versions/new", data={"csrf_token": token, "spec": EXAMPLE})
    not_image = await developer.web.post(
        f"/console/cats/{slug}/icon",
        data={"csrf_token": token},
        files={"icon": ("icon.png", b"not a png", "image/png")},
    )
    assert not_image.status_code in (415, 422), not_image.text
    assert re.search(r'<input id="f-icon"[^>]*aria-invalid="true"[^>]*>\s*<p class="field-error"', not_image.text)
    icon = await developer.web.post(
        f"/console/cats/{slug}/icon", data={"csrf_token": token}, files={"icon": ("icon.png", png(), "image/png")}
    )
    assert icon.status_code == 303, icon.text
    shot = await developer.web.post(
        f"/console/cats/{slug}/screenshots",
        data={"csrf_token": token},
        files={"screenshot": ("shot.png", png(640), "image/png")},
    )
    assert shot.status_code == 303, shot.text
    [added] = (await web.api.get(f"/api/v1/cats/{slug}", headers=developer.account.headers)).json()["screenshots"]
    removed = await developer.web.post(
        f"/console/cats/{slug}/screenshots/{added['id']}/remove", data={"csrf_token": token}
    )
    assert (removed.status_code, removed.headers["location"]) == (303, f"/console/cats/{slug}?done=removed")
    assert (await web.api.get(f"/api/v1/cats/{slug}", headers=developer.account.headers)).json()["screenshots"] == []
    submitted = await developer.web.post(f"/console/cats/{slug}/submit", data={"csrf_token": token})
    assert submitted.status_code == 303
    shown = await developer.web.get(submitted.headers["location"])
    assert "submitted for review" in shown.text
    assert "In review" in shown.text
    icon_url = re.search(r'<img class="icon large" src="(/api/v1/cats/assets/[^"]+)"', shown.text)
    assert icon_url, shown.text
    # The draft's icon loads for its publisher's browser (the session cookie), for no one else.
    seen = await developer.web.get(icon_url.group(1))
    assert (seen.status_code, seen.headers["content-type"]) == (200, "image/png")
    assert (await web.api.get(icon_url.group(1))).status_code == 404

    assert "whsec_" not in shown.text
    secrets = await developer.web.post(f"/console/cats/{slug}/webhook-secrets", data={"csrf_token": token})
    assert secrets.status_code == 200
    assert secrets.headers["cache-control"] == "no-store"
    listed = await web.api.get(f"/api/v1/cats/{slug}/webhook-secrets", headers=developer.account.headers)
    for secret in listed.json():
        assert secret["secret"] in secrets.text
    assert "whsec_" not in (await developer.web.get(f"/console/cats/{slug}")).text


async def test_a_developer_sees_only_their_own_cats(web: Site) -> None:
    ada, bob = await web.person("developer"), await web.person("developer")
    mine, theirs = await create_cat(ada), await create_cat(bob)
    console = await ada.web.get("/console")
    assert console.status_code == 200
    assert f"/console/cats/{mine}" in console.text
    assert theirs not in console.text
    assert 'aria-current="page">Console</a>' in console.text
    other = await ada.web.get(f"/console/cats/{theirs}")
    assert other.status_code == 404
    assert theirs not in other.text
    edit = await ada.web.post(
        f"/console/cats/{theirs}",
        data={"csrf_token": csrf(console), "name": "Taken", "summary": "x", "category": "points"},
    )
    assert edit.status_code == 404
    cat = await web.api.get(f"/api/v1/cats/{theirs}", headers=bob.account.headers)
    assert cat.json()["name"] == "Streak Keeper"


async def test_console_forms_without_their_token_change_nothing(web: Site) -> None:
    developer = await web.person("developer")
    slug = f"csrf-{uuid.uuid4().hex[:8]}"
    refused = await developer.web.post(
        "/console/new",
        data={"csrf_token": "guessed", "slug": slug, "name": "Forged", "summary": "x", "category": "points"},
    )
    assert refused.status_code == 403
    assert "security token" in refused.text
    assert (await web.api.get(f"/api/v1/cats/{slug}", headers=developer.account.headers)).status_code == 404
    mine = await create_cat(developer)
    forged = await developer.web.post(
        f"/console/cats/{mine}", data={"name": "Forged", "summary": "x", "category": "points"}
    )
    assert forged.status_code == 403
    assert "Forged" not in (await developer.web.get(f"/console/cats/{mine}")).text


async def test_the_listing_s_problems_are_next_to_their_fields_and_a_plain_user_is_told_how_to_publish(
    web: Site,
) -> None:
    developer = await web.person("developer")
    token = await developer.form("/console/new")
    bad = await developer.web.post(
        "/console/new",
        data={
            "csrf_token": token,
            "slug": "Not A Slug",
            "name": "Ok",
            "summary": "Fine.",
            "category": "points",
            "tags": "good, Bad Tag",
        },
    )
    assert bad.status_code == 422
    assert 'id="f-slug-error"' in bad.text
    assert 'id="f-tags-error"' in bad.text
    assert 'value="Not A Slug"' in bad.text

    user = await web.person()
    refused = await user.web.get("/console")
    assert refused.status_code == 403
    assert "developer role" in refused.text
    assert "admin" in refused.text
    assert 'href="/console"' not in refused.text  # no Console link for a plain user
    anonymous = await web.api.get("/console")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/sign-in?next=/console"


async def test_a_live_cat_s_next_version_starts_from_the_last_one_and_is_published_from_the_console(
    web: Site,
) -> None:
    developer, admin = await web.person("developer"), await web.person("admin")
    cat = await draft(web.api, developer.account)
    slug = cat["slug"]
    await web.api.post(f"/api/v1/cats/{slug}/submit", headers=developer.account.headers)
    await web.api.post(f"/api/v1/cats/{slug}/approve", headers=admin.account.headers)

    form = await developer.web.get(f"/console/cats/{slug}/versions/new")
    typed = re.search(r'<textarea id="f-spec"[^>]*>(.*?)</textarea>', form.text, re.S)
    assert typed, form.text
    spec = html.unescape(typed.group(1))
    assert spec.startswith("version: 1.0.1\n")
    assert "points:export" in spec  # the last version's permissions, endpoints and schema carry over
    added = await developer.web.post(
        f"/console/cats/{slug}/versions/new", data={"csrf_token": csrf(form), "spec": spec}
    )
    assert added.status_code == 303, added.text
    page = await developer.web.get(f"/console/cats/{slug}")
    assert "Publish 1.0.1" in page.text
    published = await developer.web.post(
        f"/console/cats/{slug}/versions/1.0.1/publish", data={"csrf_token": csrf(page)}
    )
    assert (published.status_code, published.headers["location"]) == (303, f"/console/cats/{slug}?done=published")
    assert (await web.api.get(f"/api/v1/cats/{slug}")).json()["current_version"] == "1.0.1"


async def test_what_the_last_manifest_sync_refused_is_shown_to_the_publisher(web: Site, engine: AsyncEngine) -> None:
    developer = await web.person("developer")
    slug = await create_cat(developer)
    refused = [{"file": f"{slug}/cat.yaml", "loc": "versions.0.base_url", "message": "must be an https URL"}]
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE catalog.cats SET sync_error = CAST(:errors AS jsonb) WHERE slug = :slug"),
            {"errors": json.dumps(refused), "slug": slug},
        )
    page = await developer.web.get(f"/console/cats/{slug}")
    sync = re.search(r'<section aria-labelledby="sync-problems".*?</section>', page.text, re.S)
    assert sync, page.text
    assert "versions.0.base_url" in sync.group(0)
    assert "must be an https URL" in sync.group(0)

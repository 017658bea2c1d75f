"""The admin pages: only admins get them; the review queue, a reason required where the API
requires one, a review hidden and restored, a user found and given the developer role."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from tests.catalog.conftest import draft
from tests.web.people import Person, Site, csrf, site


@pytest.fixture
async def web(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Site]:
    async with site(settings, engine) as opened:
        yield opened


async def submitted(web: Site, developer: Person) -> str:
    """A cat with a version, waiting for review: its slug."""
    cat = await draft(web.api, developer.account, slug=f"queued-{uuid.uuid4().hex[:8]}")
    sent = await web.api.post(f"/api/v1/cats/{cat['slug']}/submit", headers=developer.account.headers)
    assert sent.status_code == 200, sent.text
    return str(cat["slug"])


async def status(web: Site, admin: Person, slug: str) -> str:
    return str((await web.api.get(f"/api/v1/cats/{slug}", headers=admin.account.headers)).json()["status"])


async def test_only_admins_get_the_admin_pages(web: Site) -> None:
    anonymous = await web.api.get("/admin")
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/sign-in?next=/admin")
    developer = await web.person("developer")
    slug = await submitted(web, developer)
    for path in ("/admin", "/admin/users", f"/admin/cats/{slug}"):
        refused = await developer.web.get(path)
        assert refused.status_code == 403, path
        assert "admin role" in refused.text
        assert slug not in refused.text
    assert 'href="/admin"' not in (await developer.web.get("/console")).text
    token = await developer.form("/console")
    approved = await developer.web.post(f"/admin/cats/{slug}/moderate", data={"csrf_token": token, "action": "approve"})
    assert approved.status_code == 403
    admin = await web.person("admin")
    assert await status(web, admin, slug) == "pending_review"
    assert 'aria-current="page">Admin</a>' in (await admin.web.get("/admin")).text


async def test_an_admin_approves_from_the_queue_and_must_give_a_reason_to_reject(web: Site) -> None:
    developer, admin = await web.person("developer"), await web.person("admin")
    approve_me, reject_me = await submitted(web, developer), await submitted(web, developer)
    queue = await admin.web.get("/admin")
    assert queue.status_code == 200
    assert f'href="/admin/cats/{approve_me}"' in queue.text
    assert f'href="/admin/cats/{reject_me}"' in queue.text

    forged = await admin.web.post(f"/admin/cats/{approve_me}/moderate", data={"action": "approve", "back": "/admin"})
    assert forged.status_code == 403
    approved = await admin.web.post(
        f"/admin/cats/{approve_me}/moderate", data={"csrf_token": csrf(queue), "action": "approve", "back": "/admin"}
    )
    assert (approved.status_code, approved.headers["location"]) == (303, "/admin?done=approve")
    assert await status(web, admin, approve_me) == "published"
    after = await admin.web.get(approved.headers["location"])
    assert "approved and public" in after.text
    assert f'href="/admin/cats/{approve_me}"' not in after.text

    page = await admin.web.get(f"/admin/cats/{reject_me}")
    no_reason = await admin.web.post(
        f"/admin/cats/{reject_me}/moderate", data={"csrf_token": csrf(page), "action": "reject", "reason": "  "}
    )
    assert no_reason.status_code == 422
    field = re.search(
        r'<textarea id="f-reason"[^>]*>[^<]*</textarea>\s*<p class="field-error" id="f-reason-error">', no_reason.text
    )
    assert field, no_reason.text
    assert 'aria-invalid="true"' in field.group(0)
    assert await status(web, admin, reject_me) == "pending_review"

    rejected = await admin.web.post(
        f"/admin/cats/{reject_me}/moderate",
        data={"csrf_token": csrf(page), "action": "reject", "reason": "The support address bounces."},
    )
    assert rejected.status_code == 303
    assert await status(web, admin, reject_me) == "rejected"
    told = await developer.web.get(f"/console/cats/{reject_me}")
    assert "What the reviewer said" in told.text
    assert "The support address bounces." in told.text


async def test_an_admin_suspends_and_reinstates_a_cat_and_hides_and_restores_a_review(web: Site) -> None:
    developer, admin, reader = await web.person("developer"), await web.person("admin"), await web.person()
    slug = await submitted(web, developer)
    await web.api.post(f"/api/v1/cats/{slug}/approve", headers=admin.account.headers)
    review = await web.api.post(
        f"/api/v1/cats/{slug}/reviews",
        json={"rating": 1, "title": "Rude words here", "body": "Abuse."},
        headers=reader.account.headers,
    )
    assert review.status_code == 201, review.text
    review_id = review.json()["id"]

    page = await admin.web.get(f"/admin/cats/{slug}")
    token = csrf(page)
    assert "Rude words here" in page.text
    suspended = await admin.web.post(
        f"/admin/cats/{slug}/moderate", data={"csrf_token": token, "action": "suspend", "reason": "Broken API."}
    )
    assert suspended.status_code == 303
    assert await status(web, admin, slug) == "suspended"
    reinstated = await admin.web.post(f"/admin/cats/{slug}/moderate", data={"csrf_token": token, "action": "reinstate"})
    assert reinstated.status_code == 303
    assert await status(web, admin, slug) == "published"

    hide = f"/admin/cats/{slug}/reviews/{review_id}/hide"
    unexplained = await admin.web.post(hide, data={"csrf_token": token, "reason": ""})
    assert unexplained.status_code == 422
    assert f'id="hide-{review_id}-error"' in unexplained.text
    hidden = await admin.web.post(hide, data={"csrf_token": token, "reason": "Abusive."})
    assert hidden.status_code == 303
    public = await web.api.get(f"/api/v1/cats/{slug}/reviews")
    assert review_id not in public.text
    assert "hidden: Abusive." in (await admin.web.get(f"/admin/cats/{slug}")).text
    restored = await admin.web.post(f"/admin/cats/{slug}/reviews/{review_id}/restore", data={"csrf_token": token})
    assert restored.status_code == 303
    assert review_id in (await web.api.get(f"/api/v1/cats/{slug}/reviews")).text


async def test_an_admin_finds_a_user_grants_the_developer_role_and_disables_the_account(web: Site) -> None:
    admin, user = await web.person("admin"), await web.person()
    assert (await user.web.get("/console")).status_code == 403
    found = await admin.web.get("/admin/users", params={"q": user.account.email})
    assert found.status_code == 200
    assert user.account.email in found.text
    assert f'id="user-{user.account.id}"' in found.text
    granted = await admin.web.post(
        f"/admin/users/{user.account.id}/roles",
        data={"csrf_token": csrf(found), "developer": "yes", "back": f"/admin/users?q={user.account.email}"},
    )
    assert granted.status_code == 303
    assert granted.headers["location"].startswith("/admin/users?q=")
    # The role reaches the person's session without signing in again.
    console = await user.web.get("/console")
    assert console.status_code == 200, console.text
    assert 'href="/console"' in console.text

    disabled = await admin.web.post(f"/admin/users/{user.account.id}/disable", data={"csrf_token": csrf(found)})
    assert disabled.status_code == 303
    listed = await admin.web.get("/admin/users", params={"q": user.account.email, "status": "disabled"})
    assert "Enable the account" in listed.text
    enabled = await admin.web.post(f"/admin/users/{user.account.id}/enable", data={"csrf_token": csrf(found)})
    assert enabled.status_code == 303
    me = await web.api.get(f"/api/v1/users/{user.account.id}", headers=admin.account.headers)
    assert (me.json()["status"], me.json()["roles"]) == ("active", ["user", "developer"])

"""Installing a cat through the pages, and an installation's page: the settings form a schema
makes, problems next to their field, the CSRF guard, a key shown once, and nobody else's data.

The whole platform runs in the process (as ``cathouse up`` serves it) on the test database; a
cat is published through the API by a developer and approved by an admin first.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.services import create_platform_app
from cathouse.web import charts, settings_form
from tests.auth.conftest import PASSWORD, Account, signed_up
from tests.catalog.conftest import cat_body, version
from tests.installation.conftest import wait_for_status
from tests.support import free_port, in_process

SECRET = "sk-live-canary-5e1d7f"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "api_key": {"type": "string", "writeOnly": True, "title": "API key", "description": "From your dashboard."},
        "team": {"type": "string", "title": "Team", "default": "blue", "description": "Whose points these are."},
        "level": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3, "title": "Level"},
        "ratio": {"type": "number", "default": 0.5},
        "public": {"type": "boolean", "default": True, "title": "Public board"},
        "period": {"enum": ["daily", "weekly", "monthly"], "default": "weekly", "title": "Reset period"},
        "size": {"type": "integer", "enum": [1, 2, 3], "title": "Size"},
    },
    "required": ["api_key", "level"],
}


@pytest.fixture(scope="module")
async def platform(make_settings: Callable[..., Settings], database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The platform, with provisioning that gives up after one attempt (to see a failure soon)."""
    settings = make_settings(
        database_url,
        catalog={"facet_ttl": 0, "allow_http": True},
        installation={"webhook_max_attempts": 1, "webhook_poll_interval": 0.05},
        events={"poll_interval": 0.05},
    )
    async with in_process(create_platform_app(settings)) as client:
        yield client


async def _publish(platform: httpx.AsyncClient, engine: AsyncEngine, webhook_url: str | None = None) -> str:
    """A published cat whose settings schema has every kind of field the form makes: its slug."""
    developer = await signed_up(platform, roles=("developer",), engine=engine)
    admin = await signed_up(platform, roles=("admin",), engine=engine)
    created = await platform.post("/api/v1/cats", json=cat_body(), headers=developer.headers)
    assert created.status_code == 201, created.text
    name: str = created.json()["slug"]
    spec = version(webhook_url=webhook_url, settings_schema=SCHEMA)
    added = await platform.post(f"/api/v1/cats/{name}/versions", json=spec, headers=developer.headers)
    assert added.status_code == 201, added.text
    await platform.post(f"/api/v1/cats/{name}/submit", headers=developer.headers)
    approved = await platform.post(f"/api/v1/cats/{name}/approve", headers=admin.headers)
    assert approved.status_code == 200, approved.text
    return name


@pytest.fixture(scope="module")
async def slug(platform: httpx.AsyncClient, engine: AsyncEngine) -> str:
    return await _publish(platform, engine)


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the form carries no CSRF token"
    return found.group(1)


def _tag(page: httpx.Response, element: str, id_: str) -> str:
    found = re.search(rf'<{element} id="{re.escape(id_)}"[^>]*>', page.text)
    assert found, f"no <{element} id={id_}> in the page"
    return found.group(0)


async def _signed_in(client: httpx.AsyncClient, account: Account) -> None:
    """``client`` as ``account``'s browser: a fresh cookie jar, signed in through the page."""
    client.cookies.clear()
    form = await client.get("/sign-in")
    answer = await client.post(
        "/sign-in", data={"csrf_token": _csrf(form), "email": account.email, "password": PASSWORD, "next": "/"}
    )
    assert answer.status_code == 303, answer.text


async def _install_page(platform: httpx.AsyncClient, slug: str) -> tuple[Account, httpx.Response]:
    """A new person, signed in, on the cat's install page."""
    owner = await signed_up(platform)
    await _signed_in(platform, owner)
    return owner, await platform.get(f"/cats/{slug}/install")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _form(page: httpx.Response, **fields: Any) -> dict[str, Any]:
    return {"csrf_token": _csrf(page), "version": "1.0.0", "name": f"Main {uuid.uuid4().hex[:6]}", **fields}


async def test_the_install_form_is_made_from_the_settings_schema(
    platform: httpx.AsyncClient, engine: AsyncEngine, slug: str
) -> None:
    signed_out = await platform.get(f"/cats/{slug}/install")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == f"/sign-in?next=/cats/{slug}/install"

    await _signed_in(platform, await signed_up(platform))
    page = await platform.get(f"/cats/{slug}/install")
    assert page.status_code == 200, page.text
    # Required permissions are listed; the optional one is a checkbox, left unticked.
    assert "points:read" in page.text
    assert "points:write" in page.text
    export = _tag(page, "input", "grant-1")
    assert 'value="points:export"' in export
    assert "checked" not in export
    # Titles are the labels, descriptions the hints, defaults the values; the secret has none.
    assert '<label for="f-settings.team">Team' in page.text
    assert 'id="f-settings.team-hint">Whose points these are.' in page.text
    assert 'value="blue"' in _tag(page, "input", "f-settings.team")
    level = _tag(page, "input", "f-settings.level")
    assert all(attr in level for attr in ('type="number"', 'value="3"', 'min="1"', 'max="10"', 'step="1"', "required"))
    assert 'step="any"' in _tag(page, "input", "f-settings.ratio")
    assert "checked" in _tag(page, "input", "f-settings.public")
    period = re.search(r'<select id="f-settings.period"[^>]*>(.*?)</select>', page.text, re.S)
    assert period
    assert re.findall(r'<option value="([^"]*)"', period.group(1)) == ["", "daily", "weekly", "monthly"]
    assert '<option value="weekly" selected>' in period.group(1)
    secret = _tag(page, "input", "f-secrets.api_key")
    assert 'type="password"' in secret
    assert "value=" not in secret
    assert "required" in secret


async def test_api_problems_stand_next_to_their_field_and_a_secret_is_never_echoed(
    platform: httpx.AsyncClient, engine: AsyncEngine, slug: str
) -> None:
    owner, page = await _install_page(platform, slug)
    posted = _form(
        page,
        **{
            "settings.level": "12",
            "settings.team": "green",
            "settings.period": "monthly",
            "secrets.api_key": SECRET,
            "permissions": ["points:export"],
        },
    )
    answer = await platform.post(f"/cats/{slug}/install", data=posted)
    assert answer.status_code == 422, answer.text
    level = re.search(
        r'<input id="f-settings.level"[^>]*>\s*<p class="field-error" id="f-settings.level-error">([^<]+)</p>',
        answer.text,
    )
    assert level, answer.text
    assert "10" in level.group(1)  # the schema's maximum, in the validator's words
    assert 'aria-invalid="true"' in level.group(0)
    # What was typed stays, the ticked permission too; the secret is not written back.
    assert 'value="green"' in _tag(answer, "input", "f-settings.team")
    assert '<option value="monthly" selected>' in answer.text
    assert "checked" in _tag(answer, "input", "grant-1")
    assert SECRET not in answer.text
    assert "value=" not in _tag(answer, "input", "f-secrets.api_key")
    # Nothing was installed.
    listed = await platform.get("/api/v1/installations", headers=owner.headers)
    assert listed.json()["items"] == []

    # A name taken by another installation of theirs: said next to the name.
    name = posted["name"]
    first = await platform.post(f"/cats/{slug}/install", data={**posted, "settings.level": "4"})
    assert first.status_code == 303, first.text
    again = await platform.post(f"/cats/{slug}/install", data={**posted, "settings.level": "4", "name": name})
    assert again.status_code == 409
    assert re.search(r'<input id="f-name"[^>]*aria-invalid="true"[^>]*>\s*<p class="field-error"', again.text)


async def test_a_form_without_its_csrf_token_is_refused_and_installs_nothing(
    platform: httpx.AsyncClient, engine: AsyncEngine, slug: str
) -> None:
    owner, page = await _install_page(platform, slug)
    posted = _form(page, **{"settings.level": "2", "secrets.api_key": SECRET})
    del posted["csrf_token"]
    refused = await platform.post(f"/cats/{slug}/install", data=posted)
    assert refused.status_code == 403
    assert "security token" in refused.text
    listed = await platform.get("/api/v1/installations", headers=owner.headers)
    assert listed.json()["items"] == []


async def test_the_installation_page_shows_a_new_key_once_and_is_nobody_elses(
    platform: httpx.AsyncClient, engine: AsyncEngine, slug: str
) -> None:
    owner, page = await _install_page(platform, slug)
    stranger = await signed_up(platform)
    posted = _form(
        page, **{"settings.level": "2", "settings.size": "2", "settings.public": "true", "secrets.api_key": SECRET}
    )
    installed = await platform.post(f"/cats/{slug}/install", data=posted)
    assert installed.status_code == 303, installed.text
    here = installed.headers["location"]
    installation_id = here.rsplit("/", 1)[1]
    body = await wait_for_status(platform, owner, installation_id, "active")
    # Converted to the schema's types; the unticked optional permission was not granted.
    assert body["settings"] == {"level": 2, "size": 2, "public": True}
    assert sorted(g["permission"] for g in body["permissions"]) == ["points:read", "points:write"]

    shown = await platform.get(here)
    assert shown.status_code == 200
    assert posted["name"] in shown.text
    assert "Active" in shown.text
    assert SECRET not in shown.text
    assert "hx-trigger" not in shown.text  # settled: nothing to follow

    no_token = await platform.post(f"{here}/suspend", data={})
    assert no_token.status_code == 403
    created = await platform.post(f"{here}/api-keys", data={"csrf_token": _csrf(shown), "key_name": "backend"})
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    key = re.search(r'<input id="new-key" type="text" readonly value="(chk_[^"]+)"', created.text)
    assert key, created.text
    again = await platform.get(here)
    assert key.group(1) not in again.text
    assert key.group(1)[:12] in again.text  # its prefix, to tell keys apart
    revoke = re.search(r'action="(/installations/[^"]+/api-keys/[^"]+/revoke)"', again.text)
    assert revoke
    revoked = await platform.post(revoke.group(1), data={"csrf_token": _csrf(again)})
    assert revoked.status_code == 303
    assert "revoked" in (await platform.get(here)).text
    proxied = await platform.get(f"/api/v1/proxy/{installation_id}/balances/u_1", headers=_bearer(key.group(1)))
    assert proxied.status_code == 401

    # Suspend and resume, each back on the page saying so.
    paused = await platform.post(f"{here}/suspend", data={"csrf_token": _csrf(again)})
    assert paused.headers["location"] == f"{here}?done=suspend"
    suspended = await platform.get(paused.headers["location"])
    assert re.search(r'class="status status-suspended">Suspended<', suspended.text)
    assert f'action="{here}/resume"' in suspended.text
    assert (await platform.post(f"{here}/resume", data={"csrf_token": _csrf(again)})).status_code == 303
    assert re.search(r'class="status status-active">Active<', (await platform.get(here)).text)

    await _signed_in(platform, stranger)
    for path in (here, f"{here}/status", f"{here}/upgrade", f"{here}/uninstall"):
        theirs = await platform.get(path)
        assert theirs.status_code == 404, path
        assert posted["name"] not in theirs.text
        assert "backend" not in theirs.text
    mine = await platform.get("/installations")
    assert posted["name"] not in mine.text
    suspended = await platform.post(f"{here}/suspend", data={"csrf_token": _csrf(mine)})
    assert suspended.status_code == 404
    assert (await wait_for_status(platform, owner, installation_id, "active"))["status"] == "active"


async def test_the_status_panel_follows_a_moving_installation_and_reloads_once_settled(
    platform: httpx.AsyncClient, engine: AsyncEngine, slug: str
) -> None:
    owner, page = await _install_page(platform, slug)
    installed = await platform.post(
        f"/cats/{slug}/install", data=_form(page, **{"settings.level": "5", "secrets.api_key": SECRET})
    )
    here = installed.headers["location"]
    await wait_for_status(platform, owner, here.rsplit("/", 1)[1], "active")
    confirm = await platform.get(f"{here}/uninstall")
    assert confirm.status_code == 200
    gone = await platform.post(f"{here}/uninstall", data={"csrf_token": _csrf(confirm)})
    assert gone.status_code == 303
    seen = set()
    for _ in range(100):
        panel = await platform.get(f"{here}/status", headers={"HX-Request": "true"})
        status = re.search(r'class="status status-(\w+)"', panel.text)
        assert status, panel.text
        seen.add(status.group(1))
        if status.group(1) == "uninstalled":
            assert panel.headers["hx-refresh"] == "true"
            break
        assert 'hx-trigger="every 1s"' in panel.text
        assert "hx-refresh" not in panel.headers
        await asyncio.sleep(0.05)
    assert "uninstalled" in seen


async def test_a_failed_installation_says_why_and_can_be_retried(
    platform: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # The cat's webhook is on loopback, which provisioning refuses to call here: it fails.
    slug = await _publish(platform, engine, webhook_url=f"http://127.0.0.1:{free_port()}/hooks")
    owner, page = await _install_page(platform, slug)
    installed = await platform.post(
        f"/cats/{slug}/install", data=_form(page, **{"settings.level": "1", "secrets.api_key": SECRET})
    )
    here = installed.headers["location"]
    installation_id = here.rsplit("/", 1)[1]
    await wait_for_status(platform, owner, installation_id, "failed")
    failed = await platform.get(here)
    assert re.search(r'class="status status-failed">Setting up failed<', failed.text)
    assert re.search(r'<p class="reason">Why: the cat did not accept the install after 1 attempts', failed.text)
    assert f'action="{here}/retry"' in failed.text
    retried = await platform.post(f"{here}/retry", data={"csrf_token": _csrf(failed)})
    assert retried.headers["location"] == f"{here}?done=retry"
    await wait_for_status(platform, owner, installation_id, "failed")  # once more, after a second delivery
    again = await platform.get(retried.headers["location"])
    assert "Setting up again." in again.text
    deliveries = re.search(r'<table class="deliveries">.*?</table>', again.text, re.S)
    assert deliveries
    assert deliveries.group(0).count("installation.provisioned") == 2


def test_a_form_reads_back_the_types_of_its_schema() -> None:
    fields = settings_form.fields(SCHEMA)
    form = {
        "settings.team": " red ",
        "settings.level": "7",
        "settings.ratio": "1.25",
        "settings.period": "",
        "settings.size": "3",
        "secrets.api_key": SECRET,
    }
    settings, secrets, values = settings_form.read(fields, form)
    assert settings == {"team": "red", "level": 7, "ratio": 1.25, "public": False, "size": 3}
    assert secrets == {"api_key": SECRET}
    assert SECRET not in values.values()
    assert settings_form.read(fields, {"settings.level": "seven"})[0]["level"] == "seven"  # the API says why


def test_a_bar_chart_scales_its_bars_to_the_tallest() -> None:
    chart = charts.bar_chart([charts.Bar("1 Dec", 0), charts.Bar("2 Dec", 5), charts.Bar("3 Dec", 10)])
    assert [b.height for b in chart.bars] == [0, pytest.approx(63.0), pytest.approx(126.0)]
    assert chart.total == 15
    assert all(b.y + b.height == pytest.approx(chart.baseline) for b in chart.bars)
    assert date.today()  # the chart knows no dates: the page names the days

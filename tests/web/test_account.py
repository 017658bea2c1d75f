"""Signing up, in and out through the pages, the session cookie they set, and the forms' CSRF guard.

The whole platform runs in the process (as ``cathouse up`` serves it) on the test database.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from cathouse.platform.security.session import COOKIE
from cathouse.platform.settings import Environment, Settings
from cathouse.services import create_platform_app
from cathouse.web.app import create_web_app
from tests.support import in_process

PASSWORD = "a storefront passphrase of some length"


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(create_platform_app(settings)) as client:
        yield client


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the form carries no CSRF token"
    return found.group(1)


def _set_cookie(response: httpx.Response) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        cookie.load(header)
    return cookie


async def _sign_up(client: httpx.AsyncClient, email: str, name: str = "Ada") -> httpx.Response:
    form = await client.get("/sign-up", params={"next": "/profile"})
    return await client.post(
        "/sign-up",
        data={
            "csrf_token": _csrf(form),
            "email": email,
            "password": PASSWORD,
            "display_name": name,
            "next": "/profile",
        },
    )


async def test_signing_up_signs_in_with_an_httponly_lax_cookie_that_holds_no_readable_token(
    platform: httpx.AsyncClient,
) -> None:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    answer = await _sign_up(platform, email)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/profile"
    cookie = _set_cookie(answer)[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "lax"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # not in production: the test server speaks plain HTTP
    # Sealed: not a JWT nor anything else a script or a proxy log could use as a token.
    assert not cookie.value.startswith("eyJ")
    assert "." not in cookie.value

    profile = await platform.get("/profile")
    assert profile.status_code == 200
    assert email in profile.text
    assert 'aria-current="page">Ada</a>' in profile.text
    login = await platform.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    for secret in (login.json()["access_token"], login.json()["refresh_token"], PASSWORD):
        assert secret not in profile.text


async def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(
    platform: httpx.AsyncClient,
) -> None:
    email = f"eve-{uuid.uuid4().hex[:8]}@example.com"
    await platform.get("/sign-up")  # the visitor has a session, and so a token, but does not send it
    refused = await platform.post(
        "/sign-up", data={"email": email, "password": PASSWORD, "display_name": "Eve", "csrf_token": "guessed"}
    )
    assert refused.status_code == 403
    assert "security token" in refused.text
    login = await platform.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 401

    await _sign_up(platform, email, "Eve")
    profile = await platform.get("/profile")
    changed = await platform.post("/profile", data={"display_name": "Mallory"})
    assert changed.status_code == 403
    assert "Mallory" not in (await platform.get("/profile")).text
    assert _csrf(profile)


async def test_api_problems_are_shown_next_to_their_field_and_the_form_keeps_what_was_typed(
    platform: httpx.AsyncClient,
) -> None:
    form = await platform.get("/sign-up")
    answer = await platform.post(
        "/sign-up",
        data={"csrf_token": _csrf(form), "email": "not-an-email", "password": PASSWORD, "display_name": "Grace"},
    )
    assert answer.status_code == 422
    email_field = re.search(
        r'<input id="f-email"[^>]*>\s*<p class="field-error" id="f-email-error">([^<]+)</p>', answer.text
    )
    assert email_field, answer.text
    assert "email" in email_field.group(1).lower()
    assert 'aria-invalid="true"' in email_field.group(0)
    assert 'value="Grace"' in answer.text  # what was typed stays, except the password
    assert PASSWORD not in answer.text

    wrong = await platform.post(
        "/sign-in", data={"csrf_token": _csrf(form), "email": "nobody@example.com", "password": "wrong password here"}
    )
    assert wrong.status_code == 401
    assert 'role="alert"' in wrong.text


async def test_the_profile_changes_and_signing_out_ends_the_session(platform: httpx.AsyncClient) -> None:
    email = f"lin-{uuid.uuid4().hex[:8]}@example.com"
    await _sign_up(platform, email, "Lin")
    profile = await platform.get("/profile")
    saved = await platform.post(
        "/profile",
        data={"csrf_token": _csrf(profile), "display_name": "Lin Q.", "locale": "fr", "time_zone": "Europe/Paris"},
    )
    assert saved.status_code == 303
    page = await platform.get(saved.headers["location"])
    assert "Your profile is saved." in page.text
    assert 'value="Lin Q."' in page.text
    assert 'value="Europe/Paris"' in page.text
    me = (await platform.get("/api/v1/users/me", headers=await _bearer(platform, email))).json()
    assert (me["display_name"], me["locale"]) == ("Lin Q.", "fr")

    bad = await platform.post("/profile", data={"csrf_token": _csrf(page), "display_name": "Lin", "locale": "??"})
    assert bad.status_code == 422
    assert 'id="f-locale-error"' in bad.text

    out = await platform.post("/sign-out", data={"csrf_token": _csrf(page)})
    assert out.status_code == 303
    after = await platform.get("/profile")
    assert after.status_code == 303
    assert after.headers["location"] == "/sign-in?next=/profile"


async def _bearer(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_the_activity_stream_takes_the_session_cookie_but_not_a_forged_one(settings: Settings) -> None:
    short = settings.model_copy(
        update={"activity": settings.activity.model_copy(update={"stream_max_age": 0.2, "stream_heartbeat": 0.1})}
    )
    async with in_process(create_platform_app(short)) as client:
        assert (await client.get("/api/v1/activity/stream")).status_code == 401
        await _sign_up(client, f"sse-{uuid.uuid4().hex[:8]}@example.com", "Sam")
        stream = await client.get("/api/v1/activity/stream")
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        client.cookies.set(COOKIE, "A" * 200)
        assert (await client.get("/api/v1/activity/stream")).status_code == 401


async def test_in_production_the_cookie_is_secure(tmp_path: Path) -> None:
    production = Settings(
        _env_file=None,
        env=Environment.PRODUCTION,
        data_dir=tmp_path,
        master_key=SecretStr("a production master key of enough length, for this test only"),
        web={"api_url": "http://127.0.0.1:9"},  # type: ignore[arg-type]
    )
    async with in_process(create_web_app(production)) as client:
        page = await client.get("/sign-in")
        assert _set_cookie(page)[COOKIE]["secure"] is True

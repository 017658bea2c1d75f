"""Installing an OAuth 2.0 cat through real HTTP redirects, and every way the return can be refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cathouse import webhooks
from tests.installation.conftest import wait_for_status
from tests.installation.oauth.conftest import (
    Deployment,
    People,
    authorize,
    call_through,
    grant,
    install,
    publish_oauth_cat,
)
from tests.installation.oauth.support import Provider, aconsent
from tests.support import free_port, serving

pytestmark = pytest.mark.e2e


async def test_the_owner_grants_access_and_calls_carry_the_providers_token(
    api: httpx.AsyncClient, people: People, provider: Provider, deployment: Deployment
) -> None:
    slug, _ = await publish_oauth_cat(api, people, provider, deployment)
    installation = await install(api, people.owner, slug)
    assert installation["status"] == "authorizing"
    # Nothing reaches the cat before access is granted.
    refused = await api.get(f"/api/v1/proxy/{installation['id']}/balances/7", headers=people.owner.headers)
    assert refused.status_code == 409, refused.text

    location = await authorize(api, people.owner, installation["id"])
    sent = parse_qs(urlsplit(location).query)
    assert location.startswith(provider.authorization_url + "?")
    assert sent["redirect_uri"] == [deployment.callback]
    assert sent["code_challenge_method"] == ["S256"]
    assert len(sent["code_challenge"][0]) == 43  # base64url of a SHA-256
    assert sent["scope"] == ["points:read points:write"]

    async with httpx.AsyncClient(timeout=10) as browser:
        callback = await aconsent(browser, location)
    assert callback.startswith(deployment.callback + "?")
    done = await api.get(callback, headers=people.owner.headers)
    assert done.status_code == 200, done.text
    assert done.json()["id"] == installation["id"]
    assert done.json()["status"] in ("pending", "provisioning", "active")
    await wait_for_status(api, people.owner, installation["id"], "active")

    # Through either proxy process, the cat sees the provider's token for alice.
    for base in (deployment.platform, deployment.proxy):
        called = await call_through(api, f"{base}/api/v1/proxy/{installation['id']}/balances/7", people.owner)
        assert called.status_code == 200, called.text
        assert called.json()["sub"] == "alice"
        assert called.json()["path"] == "/balances/7"
    assert provider.stats()["codes_exchanged"] >= 1

    # The same return, replayed, is refused and changes nothing.
    replayed = await api.get(callback, headers=people.owner.headers)
    assert replayed.status_code == 400, replayed.text
    assert replayed.headers["content-type"].startswith("application/problem+json")
    assert replayed.json()["reason"] == "used"
    after = await api.get(f"/api/v1/installations/{installation['id']}", headers=people.owner.headers)
    assert after.json()["status"] == "active"


async def test_a_browser_comes_back_to_the_page_it_left(
    api: httpx.AsyncClient, people: People, provider: Provider, deployment: Deployment
) -> None:
    slug, _ = await publish_oauth_cat(api, people, provider, deployment)
    installation = await install(api, people.owner, slug)
    page = f"/installations/{installation['id']}"
    started = await api.get(
        f"/api/v1/installations/{installation['id']}/oauth/authorize",
        params={"return_to": page},
        headers=people.owner.headers,
    )
    assert started.status_code == 302
    async with httpx.AsyncClient(timeout=10) as browser:
        denied = await aconsent(browser, started.headers["location"], allow=False)
    back = await api.get(denied, headers=people.owner.headers)
    assert back.status_code == 303
    assert back.headers["location"] == f"{page}?oauth_error=denied"

    # Another site is never a place to come back to.
    for elsewhere in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        refused = await api.get(
            f"/api/v1/installations/{installation['id']}/oauth/authorize",
            params={"return_to": elsewhere},
            headers=people.owner.headers,
        )
        assert refused.status_code == 422, elsewhere


async def _status(api: httpx.AsyncClient, people: People, installation_id: str) -> str:
    found = await api.get(f"/api/v1/installations/{installation_id}", headers=people.owner.headers)
    status: str = found.json()["status"]
    return status


async def test_refusals_at_the_return_change_nothing(
    api: httpx.AsyncClient, people: People, provider: Provider, deployment: Deployment, engine: AsyncEngine
) -> None:
    slug, _ = await publish_oauth_cat(api, people, provider, deployment)
    installation = await install(api, people.owner, slug)
    iid = installation["id"]

    async def returned(callback: str, who: Any = None) -> httpx.Response:
        return await api.get(callback, headers=(who or people.owner).headers)

    # Consent denied at the provider.
    denied = await returned(await grant(api, people.owner, iid, allow=False))
    assert denied.status_code == 403
    assert denied.json()["error"] == "access_denied"
    assert await _status(api, people, iid) == "authorizing"

    # A state the platform never made, and no state at all.
    unknown = await api.get(
        "/api/v1/oauth/callback", params={"state": "forged", "code": "x"}, headers=people.owner.headers
    )
    assert unknown.status_code == 400
    assert unknown.json()["reason"] == "unknown"
    missing = await api.get("/api/v1/oauth/callback", params={"code": "x"}, headers=people.owner.headers)
    assert missing.status_code == 422

    # Another user's state: refused, and left for its owner to use.
    callback = await grant(api, people.owner, iid)
    stolen = await returned(callback, people.stranger)
    assert stolen.status_code == 403
    anonymous = await api.get(callback)
    assert anonymous.status_code == 401

    # An expired state.
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE installation.oauth_states SET expires_at = now() - interval '1 second'"))
    expired = await returned(callback)
    assert expired.status_code == 400
    assert expired.json()["reason"] == "expired"
    assert await _status(api, people, iid) == "authorizing"

    # The provider's token endpoint failing, or answering something that is not a token.
    for mode, why in (("error500", "answered 500"), ("garbage", "not a token")):
        callback = await grant(api, people.owner, iid)
        provider.token_mode(mode)
        try:
            failed = await returned(callback)
        finally:
            provider.token_mode("normal")
        assert failed.status_code == 502, failed.text
        assert why in failed.json()["detail"]
        assert await _status(api, people, iid) == "authorizing"
        # The state is spent: the same return cannot be tried again.
        assert (await returned(callback)).json()["reason"] == "used"

    # After all that, a good grant still works.
    done = await returned(await grant(api, people.owner, iid))
    assert done.status_code == 200, done.text
    await wait_for_status(api, people.owner, iid, "active")


@pytest.fixture
async def notices() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """The owner's own receiver on loopback: its URL, and what it was sent."""
    heard: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: Request) -> Response:
        heard.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    port = free_port()
    async with serving(Starlette(routes=[Route("/notices", receive, methods=["POST"])]), port):
        yield f"http://127.0.0.1:{port}/notices", heard


async def test_a_revoked_grant_breaks_the_installation_and_reconnect_mends_it(
    api: httpx.AsyncClient,
    people: People,
    provider: Provider,
    deployment: Deployment,
    notices: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    # The owner registers their own receiver, for the platform to say when an installation needs them.
    url, heard = notices
    registered = await api.put("/api/v1/installations/owner-webhook", json={"url": url}, headers=people.owner.headers)
    assert registered.status_code == 200, registered.text
    signing_secret = registered.json()["secret"]
    slug, _ = await publish_oauth_cat(api, people, provider, deployment)
    installation = await install(api, people.owner, slug)
    iid = installation["id"]
    done = await api.get(await grant(api, people.owner, iid, username="bob"), headers=people.owner.headers)
    assert done.status_code == 200, done.text
    await wait_for_status(api, people.owner, iid, "active")
    proxied = f"/api/v1/proxy/{iid}/balances/1"
    assert (await call_through(api, proxied, people.owner)).status_code == 200

    # Bob removes the app at the provider: the cat refuses the token, and the refresh is refused.
    provider.revoke_grants("bob")
    broken = await api.get(proxied, headers=people.owner.headers)
    assert broken.status_code == 409, broken.text
    assert "reconnect" in broken.json()["detail"].lower()
    body = await wait_for_status(api, people.owner, iid, "credentials_invalid")
    assert "invalid_grant" in body["status_reason"]
    for _ in range(100):
        if heard:
            break
        await asyncio.sleep(0.1)
    # ...and a webhook to the owner's own URL, signed with the secret only they were shown.
    [(headers, sent)] = heard
    webhooks.verify(signing_secret, headers, sent)
    notice = json.loads(sent)
    assert notice["type"] == "installation.credentials_invalid"
    assert notice["data"]["installation_id"] == iid
    assert "invalid_grant" in notice["data"]["reason"]

    # The owner is told in their own feed.
    for _ in range(100):
        feed = (await api.get("/api/v1/activity/me", headers=people.owner.headers)).json()["items"]
        if any("credentials_invalid" in str(item) for item in feed):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"no entry about the broken credentials in {feed}")

    # Reconnect: the same flow for the existing installation.
    again = await api.post(f"/api/v1/installations/{iid}/oauth/reconnect", json={}, headers=people.owner.headers)
    assert again.status_code == 200, again.text
    async with httpx.AsyncClient(timeout=10) as browser:
        callback = await aconsent(browser, again.json()["authorization_url"], username="bob")
    mended = await api.get(callback, headers=people.owner.headers)
    assert mended.status_code == 200, mended.text
    await wait_for_status(api, people.owner, iid, "active")
    called = await call_through(api, proxied, people.owner)
    assert called.status_code == 200, called.text
    assert called.json()["sub"] == "bob"


async def test_client_credentials_need_no_user(
    api: httpx.AsyncClient, people: People, provider: Provider, deployment: Deployment
) -> None:
    slug, _ = await publish_oauth_cat(api, people, provider, deployment, grant="client_credentials")
    before = provider.stats()["client_credentials"]
    installation = await install(api, people.owner, slug)
    assert installation["status"] in ("pending", "provisioning", "active")
    await wait_for_status(api, people.owner, installation["id"], "active")
    assert provider.stats()["client_credentials"] == before + 1  # fetched when provisioned

    proxied = f"/api/v1/proxy/{installation['id']}/balances/3"
    first = await call_through(api, proxied, people.owner)
    assert first.status_code == 200, first.text
    assert first.json()["sub"] == first.json()["client_id"]  # the platform's own client, no user
    await asyncio.sleep(5.2)  # past the token's life
    renewed = await api.get(proxied, headers=people.owner.headers)
    assert renewed.status_code == 200, renewed.text
    assert provider.stats()["client_credentials"] >= before + 2


async def test_uninstall_revokes_the_tokens_then_shreds_them(
    api: httpx.AsyncClient, people: People, provider: Provider, deployment: Deployment, engine: AsyncEngine
) -> None:
    slug, _ = await publish_oauth_cat(api, people, provider, deployment)
    installation = await install(api, people.owner, slug)
    iid = installation["id"]
    assert (await api.get(await grant(api, people.owner, iid), headers=people.owner.headers)).status_code == 200
    await wait_for_status(api, people.owner, iid, "active")
    before = provider.stats()["revocations"]

    gone = await api.delete(f"/api/v1/installations/{iid}", headers=people.owner.headers)
    assert gone.status_code == 200, gone.text
    assert provider.stats()["revocations"] == before + 2  # the refresh token and the access token
    async with engine.connect() as conn:
        held = await conn.scalar(
            text("SELECT count(*) FROM installation.oauth_tokens WHERE installation_id = :id"), {"id": iid}
        )
        key = await conn.scalar(
            text("SELECT wrapped_key FROM installation.data_keys WHERE installation_id = :id"), {"id": iid}
        )
    assert held == 0
    assert key is None

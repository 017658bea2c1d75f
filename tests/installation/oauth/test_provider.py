"""The test OAuth provider on its own, over real HTTP, seen as an OAuth client sees it."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.installation.oauth.support import Provider, aconsent, consent, running_provider

REDIRECT_URI = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with running_provider(access_ttl=1) as running:
        yield running


@pytest.fixture
def http(provider: Provider) -> Iterator[httpx.Client]:
    provider.reset()
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def registered(provider: Provider) -> tuple[str, str]:
    return provider.register_client(REDIRECT_URI)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(provider: Provider, client_id: str, challenge: str, state: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "points:read",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{provider.authorization_url}?{urlencode(params)}"


def callback_params(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT_URI
    return {key: values[0] for key, values in parse_qs(parts.query).items()}


def authorized_code(http: httpx.Client, provider: Provider, client_id: str, challenge: str) -> str:
    state = secrets.token_urlsafe(8)
    params = callback_params(consent(http, authorize_url(provider, client_id, challenge, state, prompt="consent")))
    assert params["state"] == state
    return params["code"]


def token_request(
    http: httpx.Client, provider: Provider, client: tuple[str, str], data: dict[str, str], *, basic: bool = True
) -> httpx.Response:
    if basic:
        return http.post(provider.token_url, data=data, auth=client)
    return http.post(provider.token_url, data={**data, "client_id": client[0], "client_secret": client[1]})


def user_tokens(http: httpx.Client, provider: Provider, client: tuple[str, str]) -> dict[str, Any]:
    verifier, challenge = pkce()
    code = authorized_code(http, provider, client[0], challenge)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    response = token_request(http, provider, client, data)
    assert response.status_code == 200, response.text
    return dict(response.json())


def refresh(http: httpx.Client, provider: Provider, client: tuple[str, str], token: str) -> httpx.Response:
    return token_request(http, provider, client, {"grant_type": "refresh_token", "refresh_token": token}, basic=False)


def call_api(http: httpx.Client, provider: Provider, access_token: str, path: str = "/x") -> httpx.Response:
    return http.get(f"{provider.api_url}{path}", headers={"Authorization": f"Bearer {access_token}"})


def test_the_code_flow_with_pkce_gives_a_token_the_api_takes_until_it_expires(
    http: httpx.Client, provider: Provider, registered: tuple[str, str]
) -> None:
    tokens = user_tokens(http, provider, registered)
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["expires_in"] == 1
    assert tokens["refresh_token"]

    answer = call_api(http, provider, tokens["access_token"], "/points/7")
    assert answer.status_code == 200
    assert answer.json() == {
        "sub": "alice",
        "client_id": registered[0],
        "scope": "points:read",
        "path": "/points/7",
        "method": "GET",
    }
    by_query = http.put(f"{provider.api_url}/y", params={"access_token": tokens["access_token"]})
    assert by_query.status_code == 200
    assert by_query.json()["method"] == "PUT"

    time.sleep(1.2)
    expired = call_api(http, provider, tokens["access_token"])
    assert expired.status_code == 401
    assert expired.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    stats = provider.stats()
    assert (stats["codes_exchanged"], stats["api_calls"], stats["api_rejected"]) == (1, 2, 1)


def test_a_code_is_exchanged_only_with_its_verifier_and_only_once(
    http: httpx.Client, provider: Provider, registered: tuple[str, str]
) -> None:
    verifier, challenge = pkce()
    code = authorized_code(http, provider, registered[0], challenge)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}

    missing = token_request(http, provider, registered, data)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    wrong = token_request(http, provider, registered, {**data, "code_verifier": pkce()[0]})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"

    right = {**data, "code_verifier": verifier}
    assert token_request(http, provider, registered, right, basic=False).status_code == 200
    again = token_request(http, provider, registered, right)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_a_refresh_rotates_the_refresh_token_and_the_old_one_is_refused(
    http: httpx.Client, provider: Provider, registered: tuple[str, str]
) -> None:
    old = user_tokens(http, provider, registered)["refresh_token"]

    fresh = refresh(http, provider, registered, old)
    assert fresh.status_code == 200, fresh.text
    new = fresh.json()
    assert new["refresh_token"] not in (None, old)
    assert call_api(http, provider, new["access_token"]).json()["sub"] == "alice"

    reused = refresh(http, provider, registered, old)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert refresh(http, provider, registered, new["refresh_token"]).status_code == 200

    stats = provider.stats()
    assert (stats["refreshes"], stats["refresh_failures"], stats["reused_refresh_tokens"]) == (2, 1, 1)
    first = stats["refresh_log"][0]
    assert first["sub"] == "alice"
    assert hashlib.sha256(old.encode()).hexdigest().startswith(first["old_refresh_token_id"])
    assert abs(first["at"] - time.time()) < 30


def test_a_user_who_denies_sends_access_denied_back_with_the_state(
    http: httpx.Client, provider: Provider, registered: tuple[str, str]
) -> None:
    location = consent(http, authorize_url(provider, registered[0], pkce()[1], "s-deny"), allow=False)
    params = callback_params(location)
    assert (params["error"], params["state"]) == ("access_denied", "s-deny")
    assert "code" not in params


def test_an_unknown_client_or_redirect_uri_gets_an_error_page_not_a_redirect(
    http: httpx.Client, provider: Provider, registered: tuple[str, str]
) -> None:
    unknown = http.get(authorize_url(provider, "nobody", pkce()[1], "s"))
    elsewhere = http.get(authorize_url(provider, registered[0], pkce()[1], "s", redirect_uri="http://evil.test/cb"))
    for page in (unknown, elsewhere):
        assert page.status_code == 400
        assert "location" not in page.headers


def test_revoking_the_users_grants_ends_both_tokens(
    http: httpx.Client, provider: Provider, registered: tuple[str, str]
) -> None:
    tokens = user_tokens(http, provider, registered)
    provider.revoke_grants("alice")

    assert call_api(http, provider, tokens["access_token"]).status_code == 401
    after = refresh(http, provider, registered, tokens["refresh_token"])
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"
    assert provider.stats()["reused_refresh_tokens"] == 0


def test_client_credentials_give_an_access_token_without_a_refresh_token(
    http: httpx.Client, provider: Provider, registered: tuple[str, str]
) -> None:
    response = token_request(http, provider, registered, {"grant_type": "client_credentials", "scope": "points:read"})
    assert response.status_code == 200, response.text
    token = response.json()
    assert "refresh_token" not in token
    assert call_api(http, provider, token["access_token"]).json()["sub"] == registered[0]
    wrong_secret = token_request(http, provider, (registered[0], "nope"), {"grant_type": "client_credentials"})
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert provider.stats()["client_credentials"] == 1


def test_the_token_endpoint_can_be_made_to_fail(
    http: httpx.Client, provider: Provider, registered: tuple[str, str]
) -> None:
    data = {"grant_type": "client_credentials"}
    provider.token_mode("error500")
    broken = token_request(http, provider, registered, data)
    assert broken.status_code == 500
    assert broken.headers["content-type"].startswith("text/html")

    provider.token_mode("garbage")
    garbage = token_request(http, provider, registered, data)
    assert (garbage.status_code, garbage.text) == (200, "not json at all")
    assert garbage.headers["content-type"].startswith("text/plain")

    provider.token_mode("normal")
    assert token_request(http, provider, registered, data).status_code == 200


def test_revocation_ends_an_access_token_or_a_whole_grant(
    http: httpx.Client, provider: Provider, registered: tuple[str, str]
) -> None:
    tokens = user_tokens(http, provider, registered)
    unauthenticated = http.post(provider.revocation_url, data={"token": tokens["access_token"]})
    assert unauthenticated.status_code == 401

    revoked = http.post(provider.revocation_url, data={"token": tokens["access_token"]}, auth=registered)
    assert revoked.status_code == 200
    assert call_api(http, provider, tokens["access_token"]).status_code == 401

    by_post = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    by_post |= {"client_id": registered[0], "client_secret": registered[1]}
    assert http.post(provider.revocation_url, data=by_post).status_code == 200
    assert refresh(http, provider, registered, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert provider.stats()["revocations"] == 2


async def test_the_async_consent_walks_the_same_page(provider: Provider, registered: tuple[str, str]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        location = await aconsent(client, authorize_url(provider, registered[0], pkce()[1], "s-async"), username="bob")
    params = callback_params(location)
    assert params["state"] == "s-async"
    assert params["code"]

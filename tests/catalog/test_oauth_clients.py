"""A version declaring OAuth 2.0, and the client its publisher sets: checked at once, secret kept sealed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.catalog.conftest import People, draft, version

OAUTH: dict[str, Any] = {
    "type": "oauth2",
    "grant": "authorization_code",
    "authorization_url": "https://auth.points.example.com/authorize",
    "token_url": "https://auth.points.example.com/token",
    "revocation_url": "https://auth.points.example.com/revoke",
    "scopes": ["points:read", "points:write"],
}
NO_SECRETS = {"type": "object", "properties": {"team": {"type": "string"}}}


def oauth_version(**credentials: Any) -> dict[str, Any]:
    return version(version="2.0.0", credentials={**OAUTH, **credentials}, settings_schema=NO_SECRETS)


async def test_a_version_declares_oauth_and_the_publisher_sets_its_client(
    api: httpx.AsyncClient, people: People, engine: AsyncEngine
) -> None:
    cat = await draft(api, people.developer)
    slug = cat["slug"]
    added = await api.post(f"/api/v1/cats/{slug}/versions", json=oauth_version(), headers=people.developer.headers)
    assert added.status_code == 201, added.text
    credentials = added.json()["credentials"]
    assert credentials["type"] == "oauth2"
    assert credentials["pkce"] is True
    assert credentials["token_placement"] == "header"
    assert added.json()["secret_fields"] == []

    none_yet = await api.get(f"/api/v1/cats/{slug}/oauth-client", headers=people.developer.headers)
    assert none_yet.status_code == 404

    secret = "cs-canary-4f1e9b7d"
    put = await api.put(
        f"/api/v1/cats/{slug}/oauth-client",
        json={"client_id": "cathouse-points", "client_secret": secret},
        headers=people.developer.headers,
    )
    assert put.status_code == 200, put.text
    assert put.headers["cache-control"] == "no-store"
    assert put.json()["client_id"] == "cathouse-points"
    assert put.json()["secret_set"] is True
    assert secret not in put.text
    shown = await api.get(f"/api/v1/cats/{slug}/oauth-client", headers=people.developer.headers)
    assert shown.status_code == 200
    assert shown.json()["client_id"] == "cathouse-points"
    assert secret not in shown.text
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT c::text FROM catalog.oauth_clients c"))).scalar_one()
    assert "cathouse-points" in row
    assert secret not in row  # sealed
    assert secret.encode().hex() not in row

    # Another developer, a plain user and an anonymous visitor see nothing of it.
    for headers in (people.other_developer.headers, people.user.headers, {}):
        for attempt in (
            api.get(f"/api/v1/cats/{slug}/oauth-client", headers=headers),
            api.put(
                f"/api/v1/cats/{slug}/oauth-client",
                json={"client_id": "mine", "client_secret": "x"},
                headers=headers,
            ),
        ):
            response = await attempt
            assert response.status_code in (401, 403, 404), response.text
    after = await api.get(f"/api/v1/cats/{slug}/oauth-client", headers=people.developer.headers)
    assert after.json()["client_id"] == "cathouse-points"


@pytest.mark.parametrize(
    ("credentials", "problem"),
    [
        ({"authorization_url": None}, "needs an authorization_url"),
        ({"grant": "client_credentials"}, "has no authorization_url"),
        ({"grant": "implicit"}, "authorization_code"),
        ({"token_url": "ftp://auth.points.example.com/token"}, "URL"),
        ({"scopes": ["has space"]}, "pattern"),
        ({"extra_authorize_params": {"state": "mine"}}, "may not set state"),
        ({"token_placement": "cookie"}, "header"),
        ({"token_url": "https://10.0.0.1/token"}, "is not a public address"),
        ({"revocation_url": "https://localhost/revoke"}, "localhost is not a public address"),
    ],
)
async def test_bad_oauth_declarations_are_refused_and_change_nothing(
    api: httpx.AsyncClient, people: People, credentials: dict[str, Any], problem: str
) -> None:
    cat = await draft(api, people.developer)
    response = await api.post(
        f"/api/v1/cats/{cat['slug']}/versions", json=oauth_version(**credentials), headers=people.developer.headers
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert problem in response.text
    versions = await api.get(f"/api/v1/cats/{cat['slug']}/versions", headers=people.developer.headers)
    assert [v["version"] for v in versions.json()] == ["1.0.0"]


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "", "client_secret": "x"},
        {"client_id": "a", "client_secret": ""},
        {"client_id": "a\nb", "client_secret": "x"},
        {"client_id": "a", "client_secret": "x" * 201},
        {"client_id": "a"},
        {"client_id": "a", "client_secret": "x", "extra": 1},
    ],
)
async def test_a_bad_client_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, people: People, body: dict[str, Any]
) -> None:
    cat = await draft(api, people.developer)
    response = await api.put(f"/api/v1/cats/{cat['slug']}/oauth-client", json=body, headers=people.developer.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (
        await api.get(f"/api/v1/cats/{cat['slug']}/oauth-client", headers=people.developer.headers)
    ).status_code == 404

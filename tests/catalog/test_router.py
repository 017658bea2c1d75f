"""Creating, editing and reading cats and their versions over HTTP, and who may do what."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_app
from tests.auth.conftest import signed_up
from tests.catalog.conftest import VERSION, People, cat_body, draft, published, version


async def test_a_developer_creates_a_draft_only_they_can_see(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    assert cat["status"] == "draft"
    assert cat["publisher"]["id"] == people.developer.id
    mine = await api.get(f"/api/v1/cats/{cat['slug']}", headers=people.developer.headers)
    assert mine.status_code == 200
    assert mine.json()["version"]["version"] == "1.0.0"
    for headers in ({}, people.user.headers, people.other_developer.headers):
        response = await api.get(f"/api/v1/cats/{cat['slug']}", headers=headers)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    assert (await api.get(f"/api/v1/cats/{cat['slug']}", headers=people.admin.headers)).status_code == 200
    listed = await api.get("/api/v1/cats/mine", headers=people.developer.headers)
    assert [c["slug"] for c in listed.json()["items"]] == [cat["slug"]]


async def test_my_cats_refuse_a_cursor_that_is_not_a_slug_and_change_nothing(
    api: httpx.AsyncClient, people: People
) -> None:
    cat = await draft(api, people.developer)
    # Found by the fuzzer: a NUL in the cursor reached the database and answered 500.
    for cursor in ("&\x00®%'÷", "Not A Slug"):
        refused = await api.get("/api/v1/cats/mine", params={"cursor": cursor}, headers=people.developer.headers)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    listed = await api.get("/api/v1/cats/mine", headers=people.developer.headers)
    assert [c["slug"] for c in listed.json()["items"]] == [cat["slug"]]
    # Nor does a slug in a path that cannot be one reach the database.
    for path in ("/api/v1/cats/a%00b", "/api/v1/cats/a%00b/versions", "/api/v1/cats/a%00b/reviews"):
        refused = await api.get(path, headers=people.developer.headers)
        assert refused.status_code == 422, (path, refused.text)
    # Nor a category in a body (the fuzzer's 500: a NUL in POST /cats's category).
    created = await api.post(
        "/api/v1/cats", json={**cat_body(), "category": "\x00quests"}, headers=people.developer.headers
    )
    assert created.status_code == 422, created.text


async def test_a_user_cannot_create_cats(api: httpx.AsyncClient, people: People) -> None:
    response = await api.post("/api/v1/cats", json=cat_body(), headers=people.user.headers)
    assert response.status_code == 403
    assert (await api.post("/api/v1/cats", json=cat_body())).status_code == 401


async def test_a_taken_slug_is_a_conflict(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    again = await api.post("/api/v1/cats", json=cat_body(cat["slug"]), headers=people.other_developer.headers)
    assert again.status_code == 409
    assert cat["slug"] in again.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"slug": "Not A Slug"}, "body.slug"),
        ({"slug": "double--dash"}, "body.slug"),
        ({"slug": "-leading"}, "body.slug"),
        ({"slug": "x" * 64}, "body.slug"),
        ({"slug": "mine"}, "body.slug"),
        ({"name": ""}, "body.name"),
        ({"name": "a\nb"}, "body.name"),
        ({"category": "no-such-category"}, "body.category"),
        ({"tags": ["Has Space"]}, "body.tags.0"),
        ({"tags": [f"t{i}" for i in range(11)]}, "body.tags"),
        ({"homepage": "javascript:alert(1)"}, "body.homepage"),
        ({"homepage": "http://plain.example.com"}, "body.homepage"),
        ({"support_email": "not-an-email"}, "body.support_email"),
        ({"publisher_id": str(uuid.uuid4())}, "body.publisher_id"),
        ({"status": "published"}, "body.status"),
    ],
)
async def test_bad_cats_are_refused_naming_the_field(
    api: httpx.AsyncClient, people: People, committed: AsyncEngine, changes: dict[str, Any], loc: str
) -> None:
    response = await api.post("/api/v1/cats", json=cat_body(**changes), headers=people.developer.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert loc in [e["loc"] for e in response.json()["errors"]]
    async with committed.connect() as conn:
        assert (await conn.scalar(text("SELECT count(*) FROM catalog.cats"))) == 0


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"version": "1.0"}, "semantic version"),
        ({"version": "01.0.0"}, "semantic version"),
        ({"base_url": "ftp://files.example.com"}, "URL scheme"),
        ({"base_url": "http://api.example.com"}, "https"),
        ({"endpoints": [{"method": "GET", "path": "/x", "permission": "points:admin"}]}, "undeclared"),
        ({"endpoints": [{"method": "GET", "path": "no-slash", "permission": "points:read"}]}, "pattern"),
        ({"endpoints": [{"method": "TRACE", "path": "/x", "permission": "points:read"}]}, "GET"),
        ({"credentials": {"type": "bearer", "field": "team"}}, "writeOnly"),
        ({"credentials": {"type": "cookie", "field": "api_key"}}, "tag"),
        ({"settings_schema": {"type": "string"}}, "object"),
        ({"settings_schema": {"type": "object", "properties": {"a": {"type": "nope"}}}}, "valid JSON Schema"),
        (
            {"settings_schema": {"type": "object", "properties": {"a": {"$ref": "https://evil.example.com/s"}}}},
            "local references",
        ),
        ({"permissions": [{"name": "Points Write", "description": "x"}]}, "pattern"),
        ({"rate_limit_per_minute": 0}, "greater than or equal to 1"),
        ({"webhook_url": "not a url"}, "URL"),
    ],
)
async def test_bad_versions_are_refused_and_change_nothing(
    api: httpx.AsyncClient, people: People, changes: dict[str, Any], problem: str
) -> None:
    cat = await draft(api, people.developer)
    response = await api.post(
        f"/api/v1/cats/{cat['slug']}/versions",
        json=version(**{"version": "2.0.0", **changes}),
        headers=people.developer.headers,
    )
    assert response.status_code == 422, response.text
    assert problem in response.text
    versions = await api.get(f"/api/v1/cats/{cat['slug']}/versions", headers=people.developer.headers)
    assert [v["version"] for v in versions.json()] == ["1.0.0"]


async def test_another_developers_cat_is_not_found_for_every_change(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    slug, headers = cat["slug"], people.other_developer.headers
    attempts = [
        api.patch(f"/api/v1/cats/{slug}", json={"name": "Mine now"}, headers=headers),
        api.delete(f"/api/v1/cats/{slug}", headers=headers),
        api.post(f"/api/v1/cats/{slug}/versions", json=version(version="2.0.0"), headers=headers),
        api.post(f"/api/v1/cats/{slug}/submit", headers=headers),
        api.delete(f"/api/v1/cats/{slug}/versions/1.0.0", headers=headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, response.text
    after = await api.get(f"/api/v1/cats/{slug}", headers=people.developer.headers)
    assert after.json()["name"] == cat["name"]
    assert [v["version"] for v in after.json()["versions"]] == ["1.0.0"]


async def test_editing_changes_only_what_is_sent(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    response = await api.patch(
        f"/api/v1/cats/{cat['slug']}",
        json={"summary": "  A new summary.  ", "tags": ["points", "points", "economy"]},
        headers=people.developer.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"] == "A new summary."
    assert body["tags"] == ["points", "economy"]
    assert (body["name"], body["description"]) == (cat["name"], cat["description"])
    refused = await api.patch(f"/api/v1/cats/{cat['slug']}", json={"name": None}, headers=people.developer.headers)
    assert refused.status_code == 422
    slug_change = await api.patch(f"/api/v1/cats/{cat['slug']}", json={"slug": "new"}, headers=people.developer.headers)
    assert slug_change.status_code == 422


async def test_versions_are_immutable_once_published(api: httpx.AsyncClient, people: People) -> None:
    cat = await published(api, people)
    slug, headers = cat["slug"], people.developer.headers
    again = await api.post(f"/api/v1/cats/{slug}/versions", json=VERSION, headers=headers)
    assert again.status_code == 409
    deleted = await api.delete(f"/api/v1/cats/{slug}/versions/1.0.0", headers=headers)
    assert deleted.status_code == 409
    assert "published" in deleted.json()["detail"]


async def test_a_new_version_keeps_the_old_ones(api: httpx.AsyncClient, people: People) -> None:
    cat = await published(api, people)
    slug, headers = cat["slug"], people.developer.headers
    wider = version(
        version="1.1.0",
        permissions=[*VERSION["permissions"], {"name": "badges:write", "description": "Award badges"}],
        endpoints=[*VERSION["endpoints"], {"method": "POST", "path": "/badges", "permission": "badges:write"}],
    )
    added = await api.post(f"/api/v1/cats/{slug}/versions", json=wider, headers=headers)
    assert added.status_code == 201, added.text
    assert added.json()["status"] == "draft"
    # The public sees only what is published.
    public = (await api.get(f"/api/v1/cats/{slug}")).json()
    assert public["current_version"] == "1.0.0"
    assert [v["version"] for v in public["versions"]] == ["1.0.0"]
    assert (await api.get(f"/api/v1/cats/{slug}/versions/1.1.0")).status_code == 404
    published_now = await api.post(f"/api/v1/cats/{slug}/versions/1.1.0/publish", headers=headers)
    assert published_now.status_code == 200, published_now.text
    public = (await api.get(f"/api/v1/cats/{slug}")).json()
    assert public["current_version"] == "1.1.0"
    assert "badges:write" in public["permissions"]
    assert [v["version"] for v in public["versions"]] == ["1.1.0", "1.0.0"]
    old = await api.get(f"/api/v1/cats/{slug}/versions/1.0.0")
    assert old.status_code == 200
    assert "badges:write" not in [p["name"] for p in old.json()["permissions"]]


async def test_a_prerelease_does_not_become_current(api: httpx.AsyncClient, people: People) -> None:
    cat = await published(api, people)
    slug, headers = cat["slug"], people.developer.headers
    await api.post(f"/api/v1/cats/{slug}/versions", json=version(version="2.0.0-beta.1"), headers=headers)
    await api.post(f"/api/v1/cats/{slug}/versions/2.0.0-beta.1/publish", headers=headers)
    assert (await api.get(f"/api/v1/cats/{slug}")).json()["current_version"] == "1.0.0"


async def test_the_webhook_url_and_secrets_are_shown_to_the_publisher_only(
    api: httpx.AsyncClient, people: People
) -> None:
    cat = await published(api, people)
    public = (await api.get(f"/api/v1/cats/{cat['slug']}")).json()["version"]
    assert public["webhook_url"] is None
    assert public["secret_fields"] == ["api_key"]
    own = (await api.get(f"/api/v1/cats/{cat['slug']}", headers=people.developer.headers)).json()["version"]
    assert own["webhook_url"] == VERSION["webhook_url"]


async def test_only_never_published_cats_can_be_deleted(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    assert (await api.delete(f"/api/v1/cats/{cat['slug']}", headers=people.developer.headers)).status_code == 204
    assert (await api.get(f"/api/v1/cats/{cat['slug']}", headers=people.developer.headers)).status_code == 404
    live = await published(api, people)
    refused = await api.delete(f"/api/v1/cats/{live['slug']}", headers=people.developer.headers)
    assert refused.status_code == 409
    assert (await api.get(f"/api/v1/cats/{live['slug']}")).status_code == 200


async def test_categories_count_published_cats(api: httpx.AsyncClient, people: People) -> None:
    await published(api, people, category="badges")
    await draft(api, people.developer, category="badges")
    categories = {c["slug"]: c for c in (await api.get("/api/v1/cats/categories")).json()}
    assert categories["badges"]["cat_count"] == 1
    assert categories["points"]["cat_count"] == 0
    assert len(categories) >= 10


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("https://user:secret@api.example.com/v1", "must not contain credentials"),
        ("https://api.example.com@evil.example.com/v1", "must not contain credentials"),
        ("https://api.example.com/v1?token=abc", "must not have a query or fragment"),
        ("https://api.example.com/v1#top", "must not have a query or fragment"),
        ("https://api.example.com\\@127.0.0.1/v1", "characters that are not allowed"),
        ("https://api.example.com\\v1", "characters that are not allowed"),
        ("https://127.0.0.1/v1", "127.0.0.1 is not a public address"),
        ("https://0x7f.1/v1", "127.0.0.1 is not a public address"),
        ("https://10.0.0.7/v1", "10.0.0.7 is not a public address"),
        ("https://192.168.1.20:8443/v1", "192.168.1.20 is not a public address"),
        ("https://169.254.169.254/latest", "169.254.169.254 is not a public address"),
        ("https://100.100.100.200/v1", "100.100.100.200 is not a public address"),
        ("https://[::1]/v1", "[::1] is not a public address"),
        ("https://[fd00:ec2::254]/v1", "is not a public address"),
        ("https://[::ffff:10.0.0.1]/v1", "is not a public address"),
        ("https://localhost:8080/v1", "localhost is not a public address"),
    ],
)
async def test_a_base_url_the_proxy_would_refuse_is_refused_when_the_version_is_created(
    api: httpx.AsyncClient, people: People, base_url: str, reason: str
) -> None:
    cat = await draft(api, people.developer)
    response = await api.post(
        f"/api/v1/cats/{cat['slug']}/versions",
        json=version(version="2.0.0", base_url=base_url),
        headers=people.developer.headers,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = [e for e in response.json()["errors"] if e["loc"] == "body.base_url"]
    assert reason in error["message"]
    versions = await api.get(f"/api/v1/cats/{cat['slug']}/versions", headers=people.developer.headers)
    assert [v["version"] for v in versions.json()] == ["1.0.0"]


@pytest.mark.parametrize("base_url", ["https://93.184.215.14/v1", "https://[2606:4700::6810:84e5]/v1"])
async def test_a_public_address_is_a_base_url_like_any_name(
    api: httpx.AsyncClient, people: People, base_url: str
) -> None:
    cat = await draft(api, people.developer)
    added = await api.post(
        f"/api/v1/cats/{cat['slug']}/versions",
        json=version(version="2.0.0", base_url=base_url),
        headers=people.developer.headers,
    )
    assert added.status_code == 201, added.text


async def test_the_proxys_allow_list_lets_a_development_address_through(
    committed: AsyncEngine,
    make_settings: Callable[..., Settings],
    database_url: str,
    app_client: Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    settings = make_settings(database_url, catalog={"allow_http": True}, proxy={"allow_hosts": ["127.0.0.0/8"]})
    async with app_client(create_app([SERVICES["auth"], SERVICES["catalog"]], settings=settings)) as client:
        developer = await signed_up(client, roles=("developer",), engine=committed)
        cat = await draft(client, developer)
        url = f"/api/v1/cats/{cat['slug']}/versions"
        local = await client.post(
            url, json=version(version="2.0.0", base_url="http://127.0.0.1:9000/v1"), headers=developer.headers
        )
        assert local.status_code == 201, local.text
        private = await client.post(
            url, json=version(version="2.1.0", base_url="http://10.0.0.7/v1"), headers=developer.headers
        )
        assert private.status_code == 422, private.text

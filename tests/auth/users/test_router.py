"""Profiles and admin management over HTTP, and who may call what."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.auth.conftest import PASSWORD, Account, login, register, signed_up


async def test_a_user_reads_and_edits_their_profile(auth: httpx.AsyncClient) -> None:
    account = await signed_up(auth)
    changes = {
        "display_name": "  Ana Lima ",
        "bio": "Builds leaderboards.",
        "avatar_url": "https://cdn.example.com/a.png",
        "locale": "pt-BR",
        "time_zone": "America/Sao_Paulo",
    }
    response = await auth.patch("/api/v1/users/me", json=changes, headers=account.headers)
    assert response.status_code == 200, response.text
    me = (await auth.get("/api/v1/users/me", headers=account.headers)).json()
    assert me["display_name"] == "Ana Lima"
    assert (me["bio"], me["locale"], me["time_zone"]) == ("Builds leaderboards.", "pt-BR", "America/Sao_Paulo")
    assert me["avatar_url"] == "https://cdn.example.com/a.png"


async def test_an_avatar_url_of_the_longest_length_is_kept_as_normalised(auth: httpx.AsyncClient) -> None:
    account = await signed_up(auth)
    host = ".".join(["a" * 63] * 31 + ["b" * 52]) + ".com"
    assert len(f"https://{host}") == 2048  # the most the schema allows, and no path
    response = await auth.patch("/api/v1/users/me", json={"avatar_url": f"HTTPS://{host}"}, headers=account.headers)
    assert response.status_code == 200, response.text
    assert response.json()["avatar_url"] == f"https://{host}/"


@pytest.mark.parametrize(
    "changes",
    [
        {"time_zone": "Mars/Olympus"},
        {"locale": "english please"},
        {"avatar_url": "http://insecure.example.com/a.png"},
        {"avatar_url": "javascript:alert(1)"},
        {"display_name": ""},
        {"display_name": None},
        {"display_name": "bad\nname"},
        {"bio": "x" * 501},
    ],
)
async def test_bad_profile_values_are_refused_and_change_nothing(
    auth: httpx.AsyncClient, changes: dict[str, str | None]
) -> None:
    account = await signed_up(auth)
    before = (await auth.get("/api/v1/users/me", headers=account.headers)).json()
    response = await auth.patch("/api/v1/users/me", json=changes, headers=account.headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (await auth.get("/api/v1/users/me", headers=account.headers)).json() == before


@pytest.mark.parametrize(
    "extra",
    [
        {"roles": ["admin"]},
        {"id": str(uuid.uuid4())},
        {"email_verified": True},
        {"status": "active"},
        {"email": "x@y.z"},
    ],
)
async def test_mass_assignment_changes_nothing(auth: httpx.AsyncClient, extra: dict[str, object]) -> None:
    account = await signed_up(auth)
    before = (await auth.get("/api/v1/users/me", headers=account.headers)).json()
    patched = await auth.patch("/api/v1/users/me", json={"bio": "hi", **extra}, headers=account.headers)
    assert patched.status_code == 422
    assert (await auth.get("/api/v1/users/me", headers=account.headers)).json() == before
    if "email" in extra:
        return  # email is a field of registration itself

    registered = await auth.post(
        "/api/v1/auth/register",
        json={"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD, "display_name": "Eve", **extra},
    )
    assert registered.status_code == 422


@pytest.mark.parametrize("email", ["a@example.test", "a@printer.LOCAL", "a@mail.onion.", "a@Localhost"])
async def test_a_special_use_domain_is_refused_as_its_published_schema_says(
    auth: httpx.AsyncClient, email: str
) -> None:
    spec = (await auth.get("/api/v1/openapi.json")).json()
    assert re.search(spec["components"]["schemas"]["RegisterIn"]["properties"]["email"]["not"]["pattern"], email)
    registered = await auth.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": "X"}
    )
    assert registered.status_code == 422, registered.text
    assert registered.json()["errors"][0]["loc"] == "body.email"


async def test_changing_the_password_ends_other_sessions_and_keeps_this_one(auth: httpx.AsyncClient) -> None:
    account = await signed_up(auth)
    elsewhere = (await login(auth, account.email)).json()["refresh_token"]
    wrong = await auth.post(
        "/api/v1/users/me/password",
        json={"current_password": "not it at all", "new_password": "a brand new passphrase"},
        headers=account.headers,
    )
    assert wrong.status_code == 403
    changed = await auth.post(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=account.headers,
    )
    assert changed.status_code == 204
    ended = await auth.post("/api/v1/auth/refresh", json={"refresh_token": elsewhere})
    assert ended.status_code == 401, "the other login's session ends"
    kept = await auth.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert kept.status_code == 200, "the session that changed the password goes on"
    assert (await login(auth, account.email)).status_code == 401
    assert (await login(auth, account.email, "a brand new passphrase")).status_code == 200


async def test_deleting_the_account_keeps_the_row_but_not_the_person(
    auth: httpx.AsyncClient, committed: AsyncEngine
) -> None:
    account = await signed_up(auth)
    await auth.patch("/api/v1/users/me", json={"bio": "personal"}, headers=account.headers)
    refused = await auth.request("DELETE", "/api/v1/users/me", json={"password": "wrong one"}, headers=account.headers)
    assert refused.status_code == 403
    deleted = await auth.request("DELETE", "/api/v1/users/me", json={"password": PASSWORD}, headers=account.headers)
    assert deleted.status_code == 204
    async with committed.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, email, bio FROM auth.users WHERE id = :id"), {"id": uuid.UUID(account.id)}
            )
        ).one()
    assert row.status == "deleted"
    assert account.email not in row.email
    assert row.bio is None
    assert (await login(auth, account.email)).status_code == 401
    assert (await auth.get("/api/v1/users/me", headers=account.headers)).status_code == 401
    assert (await register(auth, email=account.email)).status_code == 201, "the email is free again"


async def test_a_search_with_a_control_character_is_refused_naming_the_field(
    auth: httpx.AsyncClient, committed: AsyncEngine
) -> None:
    admin = await signed_up(auth, roles=("admin",), engine=committed)
    response = await auth.get("/api/v1/users", params={"q": "find\x00me"}, headers=admin.headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "query.q" in response.text


async def test_admins_find_users_page_by_page(auth: httpx.AsyncClient, committed: AsyncEngine) -> None:
    admin = await signed_up(auth, roles=("admin",), engine=committed)
    for n in range(5):
        await register(auth, email=f"findme-{n}@example.com", name=f"Findable {n}")
    first = await auth.get("/api/v1/users", params={"q": "findme", "limit": 2}, headers=admin.headers)
    assert first.status_code == 200
    seen = [u["email"] for u in first.json()["items"]]
    cursor = first.json()["next_cursor"]
    while cursor:
        page = (
            await auth.get("/api/v1/users", params={"q": "findme", "limit": 2, "cursor": cursor}, headers=admin.headers)
        ).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == [f"findme-{n}@example.com" for n in range(5)]
    bad = await auth.get("/api/v1/users", params={"cursor": "not-a-cursor"}, headers=admin.headers)
    assert bad.status_code == 422


async def test_admins_filter_users_by_role_and_status(auth: httpx.AsyncClient, committed: AsyncEngine) -> None:
    admin = await signed_up(auth, roles=("admin",), engine=committed)
    developer = await signed_up(auth, roles=("developer",), engine=committed)
    plain = await signed_up(auth)
    await auth.post(f"/api/v1/users/{plain.id}/disable", headers=admin.headers)

    def ids(response: httpx.Response) -> set[str]:
        assert response.status_code == 200, response.text
        return {u["id"] for u in response.json()["items"]}

    assert ids(await auth.get("/api/v1/users", params={"role": "developer"}, headers=admin.headers)) == {developer.id}
    assert ids(await auth.get("/api/v1/users", params={"role": "user"}, headers=admin.headers)) == {
        admin.id,
        developer.id,
        plain.id,
    }
    assert ids(await auth.get("/api/v1/users", params={"status": "disabled"}, headers=admin.headers)) == {plain.id}


async def test_admins_change_roles_and_disable_accounts(auth: httpx.AsyncClient, committed: AsyncEngine) -> None:
    admin = await signed_up(auth, roles=("admin",), engine=committed)
    target = await signed_up(auth)
    promoted = await auth.put(f"/api/v1/users/{target.id}/roles", json={"roles": ["developer"]}, headers=admin.headers)
    assert promoted.json()["roles"] == ["user", "developer"]
    token = (await login(auth, target.email)).json()["access_token"]
    validated = await auth.get("/api/v1/auth/validate", headers={"Authorization": f"Bearer {token}"})
    assert validated.headers["x-user-roles"] == "developer,user"

    disabled = await auth.post(f"/api/v1/users/{target.id}/disable", headers=admin.headers)
    assert disabled.json()["status"] == "disabled"
    assert (await auth.post("/api/v1/auth/refresh", json={"refresh_token": target.refresh_token})).status_code == 401
    assert (await login(auth, target.email)).status_code == 401
    enabled = await auth.post(f"/api/v1/users/{target.id}/enable", headers=admin.headers)
    assert enabled.json()["status"] == "active"
    assert (await login(auth, target.email)).status_code == 200

    own = await auth.put(f"/api/v1/users/{admin.id}/roles", json={"roles": []}, headers=admin.headers)
    assert own.status_code == 403, "an admin cannot lock themselves out"
    assert (await auth.post(f"/api/v1/users/{uuid.uuid4()}/disable", headers=admin.headers)).status_code == 404
    bogus = await auth.put(f"/api/v1/users/{target.id}/roles", json={"roles": ["superuser"]}, headers=admin.headers)
    assert bogus.status_code == 422


# Every auth-service route, and who may call it: None = anyone, "user", "admin".
ROUTES: list[tuple[str, str, str | None]] = [
    ("GET", "/api/v1/users/me", "user"),
    ("PATCH", "/api/v1/users/me", "user"),
    ("POST", "/api/v1/users/me/password", "user"),
    ("DELETE", "/api/v1/users/me", "user"),
    ("POST", "/api/v1/auth/logout-all", "user"),
    ("GET", "/api/v1/auth/validate", "user"),
    ("GET", "/api/v1/users", "admin"),
    ("GET", "/api/v1/users/{other}", "admin"),
    ("PUT", "/api/v1/users/{other}/roles", "admin"),
    ("POST", "/api/v1/users/{other}/disable", "admin"),
    ("POST", "/api/v1/users/{other}/enable", "admin"),
    ("GET", "/api/v1/auth/.well-known/jwks.json", None),
    ("POST", "/api/v1/auth/register", None),
    ("POST", "/api/v1/auth/login", None),
    ("POST", "/api/v1/auth/refresh", None),
    ("POST", "/api/v1/auth/logout", None),
]
BODIES: dict[str, object] = {
    "PATCH /api/v1/users/me": {"bio": "x"},
    "POST /api/v1/users/me/password": {"current_password": "wrong pass", "new_password": "another fine passphrase"},
    "DELETE /api/v1/users/me": {"password": "wrong pass"},
    "PUT /api/v1/users/{other}/roles": {"roles": ["developer"]},
    "POST /api/v1/auth/refresh": {"refresh_token": "chr_x"},
    "POST /api/v1/auth/logout": {"refresh_token": "chr_x"},
    "POST /api/v1/auth/login": {"email": "nobody@example.com", "password": "whatever"},
}


@pytest.mark.parametrize(("method", "path", "needs"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_role_by_route_matrix(
    auth: httpx.AsyncClient, committed: AsyncEngine, method: str, path: str, needs: str | None
) -> None:
    callers: dict[str, Account | None] = {
        "anonymous": None,
        "user": await signed_up(auth),
        "developer": await signed_up(auth, roles=("developer",), engine=committed),
        "admin": await signed_up(auth, roles=("admin",), engine=committed),
    }
    other = await signed_up(auth)
    rank = {"anonymous": 0, "user": 1, "developer": 1, "admin": 2}
    required = {None: 0, "user": 1, "admin": 2}[needs]
    for name, caller in callers.items():
        body = BODIES.get(f"{method} {path}")
        if f"{method} {path}" == "POST /api/v1/auth/register":
            body = {"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD, "display_name": "New"}
        response = await auth.request(
            method,
            path.format(other=other.id),
            json=body,
            headers=caller.headers if caller else {},
        )
        assert response.status_code != 500
        if rank[name] >= required:
            # These refuse on the body's merits (bad credentials), not on who calls.
            refused_on_merit = {
                "POST /api/v1/auth/login": 401,
                "POST /api/v1/auth/refresh": 401,
                "POST /api/v1/users/me/password": 403,
                "DELETE /api/v1/users/me": 403,
            }
            expected_refusal = refused_on_merit.get(f"{method} {path}")
            if expected_refusal is not None:
                assert response.status_code == expected_refusal, f"{name} on {method} {path}: {response.status_code}"
            else:
                assert response.status_code < 400, f"{name} refused on {method} {path}: {response.status_code}"
        else:
            expected = 401 if caller is None else 403
            assert response.status_code == expected, f"{name} on {method} {path}: {response.status_code}"

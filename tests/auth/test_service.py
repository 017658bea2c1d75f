"""Accounts and sessions over HTTP: register, log in, refresh, log out."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.services import create_service_app
from tests.auth.conftest import PASSWORD, Account, lock_out, login, register, signed_up

GENEROUS = {"login_rate": "100000/minute", "register_rate": "100000/minute"}


async def test_register_normalises_the_email_and_refuses_it_again_in_any_case(
    auth: httpx.AsyncClient,
) -> None:
    created = await register(auth, email="  Ana.Lima@Example.COM ")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["email"] == "ana.lima@example.com"
    assert body["roles"] == ["user"]
    assert "password" not in created.text
    assert "hash" not in created.text
    again = await register(auth, email="ANA.LIMA@example.com")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short", "at least 8"),
        ("password123", "too common"),
        ("x" * 129, "at most 128"),
    ],
)
async def test_weak_passwords_are_refused_with_the_reason(auth: httpx.AsyncClient, password: str, why: str) -> None:
    response = await register(auth, password=password)
    assert response.status_code == 422
    assert why in response.text
    assert any(e["loc"] == "body.password" for e in response.json()["errors"])


async def test_a_long_passphrase_without_composition_rules_is_accepted(
    auth: httpx.AsyncClient,
) -> None:
    assert (await register(auth, password="all lower case words are fine " * 2)).status_code == 201
    assert (await register(auth, password="é" * 64)).status_code == 201


async def test_login_gives_a_short_access_token_and_a_refresh_token(
    auth: httpx.AsyncClient,
) -> None:
    account = await signed_up(auth)
    pair = (await login(auth, account.email.upper())).json()
    assert pair["token_type"] == "bearer"
    assert 0 < pair["expires_in"] <= 15 * 60
    assert pair["refresh_token"].startswith("chr_")
    assert pair["refresh_expires_in"] == 30 * 24 * 3600
    me = await auth.get("/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.json()["id"] == account.id


async def test_refresh_tokens_are_stored_only_as_hashes(auth: httpx.AsyncClient, committed: AsyncEngine) -> None:
    account = await signed_up(auth)
    async with committed.connect() as conn:
        stored = (await conn.execute(text("SELECT token_hash FROM auth.refresh_tokens"))).scalars().all()
    assert stored
    assert all(account.refresh_token.encode() not in bytes(h) for h in stored)


async def test_the_three_login_failures_look_the_same(auth: httpx.AsyncClient, committed: AsyncEngine) -> None:
    locked = await signed_up(auth)
    await lock_out(committed, locked)
    existing = await signed_up(auth)
    answers = [
        await login(auth, "nobody-here@example.com"),
        await login(auth, existing.email, "not the right password"),
        await login(auth, locked.email, PASSWORD),  # even the right password, while locked
    ]
    assert {r.status_code for r in answers} == {401}
    bodies = [{k: v for k, v in r.json().items() if k != "request_id"} for r in answers]
    assert bodies[0] == bodies[1] == bodies[2]
    assert {r.headers.get("www-authenticate") for r in answers} == {None}


async def test_failed_logins_lock_the_account_and_a_correct_password_unlocks_before_that(
    auth: httpx.AsyncClient, committed: AsyncEngine
) -> None:
    account = await signed_up(auth)
    for _ in range(4):
        assert (await login(auth, account.email, "wrong password!")).status_code == 401
    assert (await login(auth, account.email)).status_code == 200, "four failures are forgiven"
    for _ in range(5):
        await login(auth, account.email, "wrong password!")
    assert (await login(auth, account.email)).status_code == 401, "the fifth failure locks"
    async with committed.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT failed_logins, locked_until > now() AS locked FROM auth.users WHERE id = :id"),
                {"id": uuid.UUID(account.id)},
            )
        ).one()
    assert row.failed_logins == 5
    assert row.locked is True


async def live_tokens(engine: AsyncEngine, account: Account) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text(
                    "SELECT count(*) FROM auth.refresh_tokens"
                    " WHERE user_id = :id AND used_at IS NULL AND revoked_at IS NULL"
                ),
                {"id": uuid.UUID(account.id)},
            )
            or 0
        )


async def refresh(client: httpx.AsyncClient, token: str, user_agent: str = "tab") -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token}, headers={"User-Agent": user_agent})


async def test_refresh_rotates_and_a_reused_token_revokes_the_whole_family(
    auth: httpx.AsyncClient, committed: AsyncEngine
) -> None:
    account = await signed_up(auth)
    first = await refresh(auth, account.refresh_token)
    assert first.status_code == 200
    child = first.json()["refresh_token"]
    assert child != account.refresh_token

    # Within the grace window, but from another client: a copy, not a retry.
    replay = await refresh(auth, account.refresh_token, user_agent="someone else")
    assert replay.status_code == 401
    after = await refresh(auth, child)
    assert after.status_code == 401, "reuse must end every token of that login"
    async with committed.connect() as conn:
        reasons = (await conn.execute(text("SELECT DISTINCT revoked_reason FROM auth.refresh_tokens"))).scalars().all()
        recorded = await conn.scalar(
            text("SELECT count(*) FROM events.outbox WHERE event_type = 'auth.refresh_token_reused'")
        )
    assert reasons == ["reuse_detected"]
    assert recorded == 1


async def test_a_retry_by_the_same_client_within_the_grace_window_gets_the_same_successor(
    auth: httpx.AsyncClient, committed: AsyncEngine
) -> None:
    account = await signed_up(auth)
    first = await refresh(auth, account.refresh_token)
    retry = await refresh(auth, account.refresh_token)
    assert first.status_code == retry.status_code == 200, retry.text
    assert retry.json()["refresh_token"] == first.json()["refresh_token"]
    me = await auth.get("/api/v1/users/me", headers={"Authorization": f"Bearer {retry.json()['access_token']}"})
    assert me.status_code == 200
    assert await live_tokens(committed, account) == 1
    assert (await refresh(auth, first.json()["refresh_token"])).status_code == 200


async def test_a_replay_after_the_grace_window_revokes_the_family(
    make_settings: Callable[..., Settings],
    database_url: str,
    committed: AsyncEngine,
    app_client: Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    settings = make_settings(database_url, auth={**GENEROUS, "refresh_reuse_grace": 0.3})
    async with app_client(create_service_app("auth", settings)) as client:
        account = await signed_up(client)
        first = await refresh(client, account.refresh_token)
        assert first.status_code == 200
        await asyncio.sleep(0.6)
        assert (await refresh(client, account.refresh_token)).status_code == 401
        assert (await refresh(client, first.json()["refresh_token"])).status_code == 401, "the family is revoked"
    assert await live_tokens(committed, account) == 0


async def test_twenty_concurrent_refreshes_leave_one_live_successor_and_the_user_signed_in(
    auth: httpx.AsyncClient, committed: AsyncEngine
) -> None:
    """Two tabs (or twenty) refreshing at once: one rotates, the others get the same successor."""
    account = await signed_up(auth)
    answers = await asyncio.gather(*(refresh(auth, account.refresh_token) for _ in range(20)))
    assert [r.status_code for r in answers] == [200] * 20, [r.text for r in answers if r.status_code != 200]
    successors = {r.json()["refresh_token"] for r in answers}
    assert len(successors) == 1
    assert await live_tokens(committed, account) == 1
    for answer in answers:
        me = await auth.get("/api/v1/users/me", headers={"Authorization": f"Bearer {answer.json()['access_token']}"})
        assert me.status_code == 200
    again = await refresh(auth, successors.pop())
    assert again.status_code == 200
    assert await live_tokens(committed, account) == 1


async def test_logout_ends_the_session_and_logout_all_ends_every_one(
    auth: httpx.AsyncClient,
) -> None:
    account = await signed_up(auth)
    other = (await login(auth, account.email)).json()
    out = await auth.post("/api/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert out.status_code == 204
    gone = await auth.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert gone.status_code == 401
    still = await auth.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert still.status_code == 200, "another login's session survives a logout"

    everywhere = await auth.post("/api/v1/auth/logout-all", headers=account.headers)
    assert everywhere.status_code == 204
    ended = await auth.post("/api/v1/auth/refresh", json={"refresh_token": still.json()["refresh_token"]})
    assert ended.status_code == 401


async def test_unknown_refresh_tokens_and_logouts_change_nothing(auth: httpx.AsyncClient) -> None:
    assert (await auth.post("/api/v1/auth/refresh", json={"refresh_token": "chr_unknown"})).status_code == 401
    assert (await auth.post("/api/v1/auth/logout", json={"refresh_token": "chr_unknown"})).status_code == 204


async def test_a_disabled_user_cannot_refresh(auth: httpx.AsyncClient, committed: AsyncEngine) -> None:
    account = await signed_up(auth)
    async with committed.begin() as conn:
        await conn.execute(
            text("UPDATE auth.users SET status = 'disabled' WHERE id = :id"),
            {"id": uuid.UUID(account.id)},
        )
    refused = await auth.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refused.status_code == 401
    assert (await login(auth, account.email)).status_code == 401


async def test_login_rehashes_a_password_stored_with_weaker_parameters(
    auth: httpx.AsyncClient, committed: AsyncEngine
) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    account = await signed_up(auth)
    weak = Argon2Hasher(memory_cost=8192, time_cost=1, parallelism=1).hash(PASSWORD)
    async with committed.begin() as conn:
        await conn.execute(
            text("UPDATE auth.users SET password_hash = :h WHERE id = :id"),
            {"h": weak, "id": uuid.UUID(account.id)},
        )
    assert (await login(auth, account.email)).status_code == 200
    async with committed.connect() as conn:
        stored = await conn.scalar(
            text("SELECT password_hash FROM auth.users WHERE id = :id"),
            {"id": uuid.UUID(account.id)},
        )
    assert stored != weak
    assert "m=19456,t=2,p=1" in stored


async def test_the_three_login_failures_take_about_the_same_time(
    auth: httpx.AsyncClient, committed: AsyncEngine
) -> None:
    locked = await signed_up(auth)
    await lock_out(committed, locked)
    existing = await signed_up(auth)
    attempts = {
        "unknown": ("nobody-here@example.com", PASSWORD),
        "wrong": (existing.email, "not the right password"),
        "locked": (locked.email, PASSWORD),
    }
    times: dict[str, list[float]] = {name: [] for name in attempts}
    # Interleaved, so a burst of other work on the machine slows every kind alike; the fastest
    # of each is its cost undisturbed (interference only ever adds time).
    for _ in range(7):
        for name, (email, password) in attempts.items():
            started = time.perf_counter()
            assert (await login(auth, email, password)).status_code == 401
            times[name].append(time.perf_counter() - started)
    fastest = {name: min(taken) for name, taken in times.items()}
    # Each failure pays for one password check (tens of ms); none is a shortcut.
    assert max(fastest.values()) < 2.5 * min(fastest.values()), fastest


async def test_concurrent_logins_do_not_starve_the_pool_while_keys_reload(
    make_settings: Callable[..., Settings],
    database_url: str,
    committed: AsyncEngine,
    app_client: Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    """Key reloads once happened inside a request and took a second connection from the
    two-connection pool the request already held one of."""
    rates = {"login_rate": "100000/minute", "register_rate": "100000/minute", "signing_key_reload": 0.05}
    settings = make_settings(database_url, auth=rates, pool_timeout=5.0)
    async with app_client(create_service_app("auth", settings)) as client:
        account = await signed_up(client)
        for _ in range(3):
            answers = await asyncio.gather(*(login(client, account.email) for _ in range(10)))
            assert [r.status_code for r in answers] == [200] * 10
            await asyncio.sleep(0.1)

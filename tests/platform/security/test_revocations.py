"""Revocations applied by a service that is not auth: its own table, fed from ``auth.revocations``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.listen import Listener
from cathouse.platform.security.principal import Principal, Role
from cathouse.platform.security.revocations import CHANNEL, RevocationFeed, Revocations, Revoked
from cathouse.platform.settings import Settings
from cathouse.services import create_service_app
from tests.auth.conftest import signed_up
from tests.support import free_port, serving

OpenClient = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]


@dataclass
class Apart:
    auth: httpx.AsyncClient
    installations: httpx.AsyncClient


@pytest.fixture
async def apart(
    committed: AsyncEngine,
    settings: Settings,
    make_settings: Callable[..., Settings],
    database_url: str,
    app_client: OpenClient,
) -> AsyncIterator[Apart]:
    """The auth service on a loopback port, and the installation service in another app that
    fetches auth's keys from there, as two processes would."""
    app = create_service_app("auth", settings)
    port = free_port()
    async with app.router.lifespan_context(app), serving(app, port):
        jwks = f"http://127.0.0.1:{port}/api/v1/auth/.well-known/jwks.json"
        apart = make_settings(database_url, tokens={"jwks_url": jwks})
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as auth,
            app_client(create_service_app("installation", apart)) as installations,
        ):
            yield Apart(auth, installations)


async def status_within(client: httpx.AsyncClient, headers: dict[str, str], expected: int, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if (await client.get("/api/v1/installations", headers=headers)).status_code == expected:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not {expected} within {seconds} s")


async def test_a_disabled_account_is_refused_by_another_service_and_enabled_again_signs_in_anew(
    apart: Apart, committed: AsyncEngine
) -> None:
    auth, installations = apart.auth, apart.installations
    admin = await signed_up(auth, roles=("admin",), engine=committed)
    account = await signed_up(auth)
    assert (await installations.get("/api/v1/installations", headers=account.headers)).status_code == 200
    disabled = await auth.post(f"/api/v1/users/{account.id}/disable", headers=admin.headers)
    assert disabled.status_code == 200
    await status_within(installations, account.headers, 401, 5)
    refused = await installations.get("/api/v1/installations", headers=account.headers)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "This account is disabled."

    assert (await auth.post(f"/api/v1/users/{account.id}/enable", headers=admin.headers)).status_code == 200
    await asyncio.sleep(1.5)
    still = await installations.get("/api/v1/installations", headers=account.headers)
    assert still.status_code == 401, "a token issued before the account was disabled stays void"
    assert "revoked" in still.json()["detail"]
    again = await auth.post("/api/v1/auth/login", json={"email": account.email, "password": account.password})
    assert (await installations.get("/api/v1/installations", headers=bearer(again.json()))).status_code == 200


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


def principal(user_id: uuid.UUID, *, version: int, roles: set[Role], session: uuid.UUID | None = None) -> Principal:
    return Principal(user_id, frozenset(roles), "jti", int(time.time()) + 60, session, version)


def table(user_id: uuid.UUID, **row: Any) -> Revocations:
    revocations = Revocations(keep_for=60)
    values = {"version": 2, "roles": ["user"], "disabled": False, "valid_from": 0, "kept_session": None} | row
    revocations.apply(
        [
            (
                user_id,
                values["version"],
                values["roles"],
                values["disabled"],
                values["valid_from"],
                values["kept_session"],
                datetime.now(UTC),
            )
        ]
    )
    return revocations


def test_a_token_older_than_the_latest_change_takes_the_accounts_roles_a_newer_one_keeps_its_own() -> None:
    user = uuid.uuid4()
    revocations = table(user, version=2, roles=["user"])
    demoted = revocations.check(principal(user, version=1, roles={Role.USER, Role.DEVELOPER}))
    assert demoted.roles == {Role.USER}
    # Issued after the change (promoted since, by a path that wrote no row): its own roles stand.
    newer = revocations.check(principal(user, version=2, roles={Role.USER, Role.ADMIN}))
    assert newer.roles == {Role.USER, Role.ADMIN}


def test_ended_sessions_are_refused_but_the_one_that_changed_the_password_and_later_tokens() -> None:
    user, kept = uuid.uuid4(), uuid.uuid4()
    revocations = table(user, version=3, valid_from=3, kept_session=kept)
    with pytest.raises(Revoked, match="revoked"):
        revocations.check(principal(user, version=2, roles={Role.USER}, session=uuid.uuid4()))
    with pytest.raises(Revoked):
        revocations.check(principal(user, version=2, roles={Role.USER}))  # names no session
    assert revocations.check(principal(user, version=2, roles={Role.USER}, session=kept)).user_id == user
    assert revocations.check(principal(user, version=3, roles={Role.USER}, session=uuid.uuid4())).user_id == user


def test_an_older_row_read_after_a_newer_one_changes_nothing() -> None:
    user = uuid.uuid4()
    revocations = table(user, version=5, disabled=True)
    revocations.apply([(user, 4, ["user"], False, 0, None, datetime.now(UTC))])
    assert revocations.disabled(user)
    with pytest.raises(Revoked, match="disabled"):
        revocations.check(principal(user, version=9, roles={Role.USER}))


async def test_a_notification_brings_a_change_at_once_where_the_process_already_listens(
    committed: AsyncEngine,
) -> None:
    """With a LISTEN connection held for something else, a change arrives on NOTIFY, long before
    the (here, half-minute) poll."""
    revocations = Revocations(keep_for=60)
    listener = Listener(committed.url, application_name="cathouse-test-revocations")
    feed = RevocationFeed(committed, revocations, interval=30, listener=listener)
    user = uuid.uuid4()
    async with listener.running(), feed.running():
        await listener.listen("cathouse_test_other", lambda: None).wait()  # someone else's channel
        async with asyncio.timeout(5):
            await listener.listening_on(CHANNEL).wait()
        async with committed.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO auth.users (id, email, password_hash, display_name, status)"
                    " VALUES (:id, :email, '!', 'Ana', 'disabled')"
                ),
                {"id": user, "email": f"{user}@example.com"},
            )
            await conn.execute(
                text(
                    "INSERT INTO auth.revocations (user_id, version, roles, disabled, valid_from)"
                    " VALUES (:id, 1, '{user}', true, 1)"
                ),
                {"id": user},
            )
        started = time.monotonic()
        while not revocations.disabled(user):
            assert time.monotonic() - started < 3, "not notified"
            await asyncio.sleep(0.01)

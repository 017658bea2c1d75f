"""Fixtures and factories for the auth service's tests: a real app over the test database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def lock_out(engine: AsyncEngine, account: Account) -> None:
    """Put an account in a lockout, as seven recent failed logins would."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE auth.users SET failed_logins = 7, locked_until = now() + interval '1 hour' WHERE id = :id"),
            {"id": uuid.UUID(account.id)},
        )


async def register(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD, name: str = "Ana"
) -> httpx.Response:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    return await client.post("/api/v1/auth/register", json={"email": email, "password": password, "display_name": name})


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def signed_up(
    client: httpx.AsyncClient, *, roles: tuple[str, ...] = (), engine: AsyncEngine | None = None
) -> Account:
    """A registered, signed-in account; with ``roles`` (and the engine), granted them first."""
    created = await register(client)
    assert created.status_code == 201, created.text
    body = created.json()
    if roles:
        assert engine is not None, "granting roles needs the engine"
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE auth.users SET roles = :roles WHERE id = :id"),
                {"roles": ["user", *roles], "id": uuid.UUID(body["id"])},
            )
    tokens = await login(client, body["email"])
    assert tokens.status_code == 200, tokens.text
    pair = tokens.json()
    return Account(body["id"], body["email"], PASSWORD, pair["access_token"], pair["refresh_token"])

"""``cathouse users create-admin`` and ``cathouse keys rotate-signing`` as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import RUN_MASTER_KEY, cathouse_env

pytestmark = pytest.mark.e2e


def cathouse(args: list[str], database_url: str, tmp_path: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = cathouse_env(tmp_path, {"CATHOUSE_MASTER_KEY": RUN_MASTER_KEY}, database_url=database_url)
    return subprocess.run(
        [sys.executable, "-m", "cathouse", *args], env=env, input=stdin, capture_output=True, text=True, check=False
    )


async def test_create_admin_makes_an_admin_who_can_sign_in(
    committed: AsyncEngine, database_url: str, tmp_path: Path, auth: httpx.AsyncClient
) -> None:
    args = ["users", "create-admin", "--email", "Root@Example.com", "--password-stdin"]
    done = cathouse(args, database_url, tmp_path, stdin="a long operator passphrase\n")
    assert done.returncode == 0, done.stderr
    assert "Created admin Root@example.com" in done.stdout  # the result on stdout, for a script to read
    assert "Created admin" not in done.stderr
    again = cathouse(args, database_url, tmp_path, stdin="a long operator passphrase\n")
    assert again.returncode == 0, again.stderr
    assert "Promoted admin" in again.stdout
    async with committed.connect() as conn:
        rows = (await conn.execute(text("SELECT email, roles FROM auth.users WHERE email LIKE 'root@%'"))).all()
    assert [(r.email, r.roles) for r in rows] == [("root@example.com", ["user", "admin"])]

    tokens = await auth.post(
        "/api/v1/auth/login", json={"email": "root@example.com", "password": "a long operator passphrase"}
    )
    assert tokens.status_code == 200
    users = await auth.get("/api/v1/users", headers={"Authorization": f"Bearer {tokens.json()['access_token']}"})
    assert users.status_code == 200


def test_create_admin_refuses_a_weak_password_and_writes_nothing(database_url: str, tmp_path: Path) -> None:
    done = cathouse(
        ["users", "create-admin", "--email", "weak@example.com", "--password-stdin"], database_url, tmp_path, "password"
    )
    assert done.returncode == 2
    assert "too common" in done.stderr


async def test_rotate_signing_adds_a_key_and_keeps_the_old_one_verifying(
    committed: AsyncEngine, database_url: str, tmp_path: Path, auth: httpx.AsyncClient
) -> None:
    before = (await auth.get("/api/v1/auth/.well-known/jwks.json")).json()["keys"]
    done = cathouse(["keys", "rotate-signing"], database_url, tmp_path)
    assert done.returncode == 0, done.stderr
    async with committed.connect() as conn:
        keys = (await conn.execute(text("SELECT kid, superseded_at IS NULL AS current FROM auth.signing_keys"))).all()
    assert len(keys) == len(before) + 1
    assert sum(k.current for k in keys) == 1
    assert {k["kid"] for k in before} < {k.kid for k in keys}

"""Forged, tampered and misused access tokens: every one is a 401 problem, never a 500.

Each token is sent to forward-auth (``/auth/validate``) and to an endpoint that needs a bearer
token (``/users/me``); a client must see the same refusal from both.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.auth.keys import rotate
from cathouse.platform.crypto import derive_key, unseal
from cathouse.platform.db import sessionmaker
from cathouse.platform.settings import Settings
from cathouse.services import create_service_app
from tests.auth.conftest import Account, login, signed_up

OpenClient = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]
PROTECTED = ("/api/v1/auth/validate", "/api/v1/users/me")
JWKS = "/api/v1/auth/.well-known/jwks.json"
LEEWAY = 30


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def forge(header: object, claims: object, sign: Callable[[bytes], bytes] | None = None) -> str:
    """A token built by hand: any header, any claims, signed by ``sign`` (or not at all)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = b64url(sign(signing_input.encode())) if sign else ""
    return f"{signing_input}.{signature}"


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The header, claims and (still encoded) signature of a token."""
    header, payload, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload)), signature


def claims_for(user_id: str, /, *, drop: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    """The claims the auth service issues, changed by ``overrides`` and without ``drop``."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "cathouse",
        "aud": "cathouse",
        "sub": user_id,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "typ": "access",
        "roles": ["user"],
    }
    claims.update(overrides)
    for name in drop:
        del claims[name]
    return claims


@dataclass(frozen=True)
class SigningKeyPair:
    kid: str
    private: Ed25519PrivateKey

    def token(self, claims: dict[str, Any]) -> str:
        """A token exactly as the service would sign it (by hand: PyJWT refuses some bad claims)."""
        return forge({"alg": "EdDSA", "typ": "JWT", "kid": self.kid}, claims, self.private.sign)


async def current_key(engine: AsyncEngine, master_key: str) -> SigningKeyPair:
    """The auth service's real signing key, read from the database and unsealed."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT kid, private_key_sealed FROM auth.signing_keys WHERE superseded_at IS NULL")
            )
        ).one()
    pem = unseal(derive_key(master_key, "cathouse/auth/signing-key/v1"), row.private_key_sealed, row.kid.encode())
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return SigningKeyPair(row.kid, private)


async def assert_refused(client: httpx.AsyncClient, authorization: bytes) -> None:
    """Both protected endpoints answer a 401 problem (with a bearer challenge) to this header."""
    for path in PROTECTED:
        response = await client.get(path, headers={b"Authorization": authorization})
        assert response.status_code == 401, (path, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json", (path, response.headers)
        assert response.json()["status"] == 401
        assert response.headers["www-authenticate"].startswith("Bearer"), path


async def assert_accepted(client: httpx.AsyncClient, token: str, user_id: str) -> None:
    for path in PROTECTED:
        response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, (path, response.status_code, response.text)
    validated = await client.get(PROTECTED[0], headers={"Authorization": f"Bearer {token}"})
    assert validated.headers["x-user-id"] == user_id


async def assert_token_refused(client: httpx.AsyncClient, token: str) -> None:
    await assert_refused(client, f"Bearer {token}".encode())


@pytest.fixture
async def account(auth: httpx.AsyncClient) -> Account:
    return await signed_up(auth)


@pytest.fixture
async def our_key(auth: httpx.AsyncClient, committed: AsyncEngine, settings: Settings) -> SigningKeyPair:
    return await current_key(committed, settings.master_key_value())


# --- the signing helper itself, so a refusal below is the forgery's doing ---------------------


async def test_a_token_signed_by_the_helper_with_our_key_is_accepted(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair
) -> None:
    await assert_accepted(auth, our_key.token(claims_for(account.id)), account.id)
    assert parts(account.access_token)[0]["kid"] == our_key.kid


async def test_a_token_expired_within_the_leeway_is_still_accepted(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair
) -> None:
    now = int(time.time())
    token = our_key.token(claims_for(account.id, iat=now - 910, nbf=now - 910, exp=now - 10))
    await assert_accepted(auth, token, account.id)


# --- 1. alg "none" ------------------------------------------------------------------------------


@pytest.mark.parametrize("keep_signature", [False, True], ids=["empty-signature", "original-signature"])
@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_is_refused(auth: httpx.AsyncClient, account: Account, alg: str, keep_signature: bool) -> None:
    header, claims, signature = parts(account.access_token)
    token = forge({**header, "alg": alg}, claims)
    if keep_signature:
        token += signature
    await assert_token_refused(auth, token)


# --- 2. stripped signature ----------------------------------------------------------------------


@pytest.mark.parametrize("keep_dot", [True, False], ids=["header.payload.", "header.payload"])
async def test_a_stripped_signature_is_refused(auth: httpx.AsyncClient, account: Account, keep_dot: bool) -> None:
    header, payload, _ = account.access_token.split(".")
    await assert_token_refused(auth, f"{header}.{payload}." if keep_dot else f"{header}.{payload}")


# --- 3. tampered claims under the original signature --------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"roles": ["admin"]},
        {"roles": ["user", "developer", "admin"]},
        {"sub": str(uuid.uuid4())},
        {"exp": int(time.time()) + 10 * 365 * 86400},
    ],
    ids=["roles-admin", "roles-all", "other-sub", "longer-exp"],
)
async def test_a_changed_claim_under_the_original_signature_is_refused(
    auth: httpx.AsyncClient, account: Account, change: dict[str, Any]
) -> None:
    header, claims, signature = parts(account.access_token)
    await assert_token_refused(auth, forge(header, {**claims, **change}) + signature)


# --- 4. algorithm confusion: HMAC keyed with our public key -------------------------------------


@pytest.mark.parametrize("secret_form", ["raw-bytes", "x-text", "pem"])
@pytest.mark.parametrize("alg", ["HS256", "HS512"])
async def test_hmac_signed_with_our_public_key_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair, alg: str, secret_form: str
) -> None:
    jwk = next(k for k in (await auth.get(JWKS)).json()["keys"] if k["kid"] == our_key.kid)
    raw = unb64url(jwk["x"])
    public = Ed25519PublicKey.from_public_bytes(raw)
    secret = {
        "raw-bytes": raw,
        "x-text": jwk["x"].encode(),
        "pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    }[secret_form]
    digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
    token = forge(
        {"alg": alg, "typ": "JWT", "kid": our_key.kid},
        claims_for(account.id, roles=["admin"]),
        lambda data: hmac.new(secret, data, digest).digest(),
    )
    await assert_token_refused(auth, token)


# --- 5. keys offered in the header --------------------------------------------------------------


@pytest.mark.parametrize("offer", ["jwk", "jku", "x5u", "x5c"])
@pytest.mark.parametrize("kid_is_ours", [True, False], ids=["our-kid", "attacker-kid"])
async def test_a_key_offered_in_the_header_is_not_used(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair, offer: str, kid_is_ours: bool
) -> None:
    attacker = Ed25519PrivateKey.generate()
    attacker_kid = "attacker-key-1"
    attacker_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key()))
    attacker_jwk.update({"kid": attacker_kid, "alg": "EdDSA", "use": "sig"})
    cert = b64url(os.urandom(64))  # not a real certificate: it must be refused before anyone parses it
    offered: dict[str, object] = {
        "jwk": attacker_jwk,
        "jku": "https://attacker.example/.well-known/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": [cert],
    }
    header = {"alg": "EdDSA", "typ": "JWT", "kid": our_key.kid if kid_is_ours else attacker_kid, offer: offered[offer]}
    token = forge(header, claims_for(account.id, roles=["admin"]), attacker.sign)
    await assert_token_refused(auth, token)


async def test_a_header_offering_a_key_is_refused_even_when_our_key_signed_it(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair
) -> None:
    # jwk/jku/x5u/x5c/crit are refused outright, not merely ignored.
    for extra in ({"jku": "https://attacker.example/jwks.json"}, {"crit": ["exp"]}):
        header = {"alg": "EdDSA", "typ": "JWT", "kid": our_key.kid, **extra}
        await assert_token_refused(auth, forge(header, claims_for(account.id), our_key.private.sign))


# --- 6. unknown and malicious kids ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kid",
    [
        "no-such-key-123",
        "../../etc/passwd",
        "' OR 1=1 --",
        "k" * 10_000,
        "",
        "\x00",
        12345,
        ["kid"],
        {"kid": "x"},
        None,
    ],
    ids=["unknown", "path-traversal", "sql", "10000-chars", "empty", "nul", "number", "list", "object", "null"],
)
async def test_an_unknown_or_malicious_kid_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair, kid: object
) -> None:
    # Signed with our real key: only the kid is wrong.
    token = forge({"alg": "EdDSA", "typ": "JWT", "kid": kid}, claims_for(account.id), our_key.private.sign)
    await assert_token_refused(auth, token)


@pytest.mark.parametrize("suffix", ["\n", " ", "/../x"], ids=["newline", "space", "traversal"])
async def test_our_kid_with_something_appended_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair, suffix: str
) -> None:
    header = {"alg": "EdDSA", "typ": "JWT", "kid": our_key.kid + suffix}
    await assert_token_refused(auth, forge(header, claims_for(account.id), our_key.private.sign))


async def test_a_token_without_a_kid_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair
) -> None:
    token = jwt.encode(claims_for(account.id), our_key.private, algorithm="EdDSA")
    await assert_token_refused(auth, token)


# --- 7. wrong issuer or audience, signed with our real key --------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "evil"},
        {"iss": "Cathouse"},
        {"iss": ["cathouse"]},
        {"aud": "evil"},
        {"aud": ["evil", "other"]},
        {"aud": "cathouse-admin"},
    ],
    ids=["iss-evil", "iss-case", "iss-list", "aud-evil", "aud-list-without-ours", "aud-prefix"],
)
async def test_a_wrong_issuer_or_audience_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair, change: dict[str, Any]
) -> None:
    await assert_token_refused(auth, our_key.token(claims_for(account.id, **change)))


# --- 8. time ------------------------------------------------------------------------------------


async def test_an_expired_token_is_refused(auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair) -> None:
    now = int(time.time())
    token = our_key.token(claims_for(account.id, iat=now - 1000, nbf=now - 1000, exp=now - LEEWAY - 60))
    await assert_token_refused(auth, token)


async def test_a_token_not_yet_valid_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair
) -> None:
    now = int(time.time())
    await assert_token_refused(auth, our_key.token(claims_for(account.id, nbf=now + LEEWAY + 60)))


async def test_a_token_issued_in_the_future_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair
) -> None:
    now = int(time.time())
    token = our_key.token(claims_for(account.id, iat=now + 3600, nbf=now, exp=now + 4500))
    await assert_token_refused(auth, token)


# --- 9. refresh and access tokens are not interchangeable -----------------------------------------


async def test_a_refresh_token_is_not_a_bearer_access_token(auth: httpx.AsyncClient, account: Account) -> None:
    assert account.refresh_token.startswith("chr_")
    await assert_token_refused(auth, account.refresh_token)


async def test_an_access_token_is_not_a_refresh_token(auth: httpx.AsyncClient, account: Account) -> None:
    response = await auth.post("/api/v1/auth/refresh", json={"refresh_token": account.access_token})
    assert response.status_code in (401, 422), response.text  # 422 tolerated here; exactly 401 below
    assert response.headers["content-type"] == "application/problem+json"
    assert "access_token" not in response.json()
    # The real refresh token still works: the attempt did not end the session.
    assert (await auth.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})).status_code == 200


async def test_an_access_token_sent_to_refresh_is_a_401(auth: httpx.AsyncClient, account: Account) -> None:
    response = await auth.post("/api/v1/auth/refresh", json={"refresh_token": account.access_token})
    assert response.status_code == 401, response.text


# --- 10. garbage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer ",
        b"Bearer",
        b"Bearer    ",
        b"Bearer " + base64.b64encode(os.urandom(96)),
        b"Bearer " + base64.urlsafe_b64encode(os.urandom(96)).rstrip(b"="),
        b"Bearer a.b",
        b"Bearer a.b.c.d",
        b"Bearer ...",
        b"Bearer " + "jötä.ñäme.ü".encode(),
        b"Bearer \xff\xfe\xfd.\x80.\x81",
        b"Bearer " + b64url(b"[" * 5000).encode() + b".e30.",
        b"Bearer " + b64url(b"[1]").encode() + b".e30.",
        b"Bearer " + b64url(b"\xff\xfe").encode() + b".e30.",
        b"Token abc.def.ghi",
    ],
    ids=[
        "empty",
        "no-space",
        "only-spaces",
        "random-base64",
        "random-base64url",
        "two-segments",
        "four-segments",
        "only-dots",
        "non-ascii-utf8",
        "non-ascii-latin1",
        "deeply-nested-header",
        "header-not-an-object",
        "header-not-utf8",
        "other-scheme",
    ],
)
async def test_garbage_is_refused(auth: httpx.AsyncClient, authorization: bytes) -> None:
    await assert_refused(auth, authorization)


@pytest.mark.parametrize("how", ["extra-segment", "non-ascii-appended", "doubled"])
async def test_a_real_token_mangled_is_refused(auth: httpx.AsyncClient, account: Account, how: str) -> None:
    token = account.access_token
    mangled = {
        "extra-segment": f"{token}.{token.split('.')[2]}".encode(),
        "non-ascii-appended": (token + "é").encode(),
        "doubled": f"{token}{token}".encode(),
    }[how]
    await assert_refused(auth, b"Bearer " + mangled)


# --- 11. typ and required claims --------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"typ": "refresh"}, {"typ": "Access"}, {"typ": ["access"]}, {"typ": None}],
    ids=["refresh", "capitalised", "list", "null"],
)
async def test_a_token_of_another_type_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair, change: dict[str, Any]
) -> None:
    await assert_token_refused(auth, our_key.token(claims_for(account.id, **change)))


@pytest.mark.parametrize("claim", ["typ", "exp", "iat", "nbf", "iss", "aud", "sub", "jti"])
async def test_a_token_missing_a_required_claim_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair, claim: str
) -> None:
    await assert_token_refused(auth, our_key.token(claims_for(account.id, drop=(claim,))))


@pytest.mark.parametrize(
    "change",
    [{"sub": "not-a-uuid"}, {"roles": ["superuser"]}, {"roles": "admin"}, {"exp": "tomorrow"}],
    ids=["sub-not-uuid", "unknown-role", "roles-string", "exp-string"],
)
async def test_a_signed_token_with_malformed_claims_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair, change: dict[str, Any]
) -> None:
    await assert_token_refused(auth, our_key.token(claims_for(account.id, **change)))


def numeric_date_as(kind: str, claim: str) -> dict[str, Any]:
    """``claim`` (exp, iat or nbf) of a valid token, spelled as ``kind`` instead of a JSON integer."""
    value = int(time.time()) + (900 if claim == "exp" else 0)
    spelled: dict[str, Any] = {"digits": str(value), "float": value + 0.5, "bool": True, "null": None}
    return {claim: spelled[kind]}


@pytest.mark.parametrize("kind", ["digits", "float", "bool", "null"])
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_a_numeric_date_that_is_not_a_json_integer_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair, claim: str, kind: str
) -> None:
    """RFC 7519's NumericDate is a number: a string of digits is not one, whatever PyJWT makes of it."""
    await assert_token_refused(auth, our_key.token(claims_for(account.id, **numeric_date_as(kind, claim))))


@pytest.mark.parametrize(
    "change",
    [
        {"sub": "UPPER"},
        {"sub": 7},
        {"roles": ["user", 1]},
        {"roles": None},
        {"roles": {"admin": True}},
        {"sid": "not-a-uuid"},
        {"sid": None},
        {"ver": "3"},
        {"ver": True},
        {"ver": -1},
        {"jti": 12345},
        {"jti": "x" * 65},
    ],
    ids=[
        "sub-upper",
        "sub-number",
        "roles-with-number",
        "roles-null",
        "roles-object",
        "sid-not-uuid",
        "sid-null",
        "ver-string",
        "ver-bool",
        "ver-negative",
        "jti-number",
        "jti-too-long",
    ],
)
async def test_a_claim_of_the_wrong_type_or_shape_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair, change: dict[str, Any]
) -> None:
    if change.get("sub") == "UPPER":
        change = {"sub": account.id.upper()}
    await assert_token_refused(auth, our_key.token(claims_for(account.id, **change)))


async def test_a_token_without_roles_is_refused(
    auth: httpx.AsyncClient, account: Account, our_key: SigningKeyPair
) -> None:
    await assert_token_refused(auth, our_key.token(claims_for(account.id, drop=("roles",))))


# --- 12. rotation -------------------------------------------------------------------------------------


@pytest.fixture
async def fast_auth(
    committed: AsyncEngine,
    database_url: str,
    settings: Settings,
    make_settings: Callable[..., Settings],
    app_client: OpenClient,
) -> AsyncIterator[httpx.AsyncClient]:
    """The auth service reloading its signing keys every 0.1 s, so a rotation shows at once."""
    fast = make_settings(
        database_url,
        master_key=settings.master_key_value(),
        auth={"signing_key_reload": 0.1, "login_rate": "100000/minute", "register_rate": "100000/minute"},
    )
    async with app_client(create_service_app("auth", fast)) as client:
        yield client


async def rotate_signing_key(engine: AsyncEngine, master_key: str, overlap: timedelta) -> str:
    async with sessionmaker(engine)() as session:
        key = await rotate(session, master_key, overlap=overlap)
        await session.commit()
    return key.kid


async def jwks_kids(client: httpx.AsyncClient) -> set[str]:
    return {k["kid"] for k in (await client.get(JWKS)).json()["keys"]}


async def new_access_token(client: httpx.AsyncClient, account: Account) -> str:
    response = await login(client, account.email)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_tokens_of_the_old_and_new_key_both_verify_during_the_overlap(
    fast_auth: httpx.AsyncClient, committed: AsyncEngine, settings: Settings
) -> None:
    account = await signed_up(fast_auth)
    token_a = account.access_token
    await assert_accepted(fast_auth, token_a, account.id)
    kid_a = parts(token_a)[0]["kid"]

    kid_new = await rotate_signing_key(committed, settings.master_key_value(), timedelta(minutes=16))
    await asyncio.sleep(0.2)
    token_b = await new_access_token(fast_auth, account)
    kid_b = parts(token_b)[0]["kid"]

    assert kid_b == kid_new != kid_a
    await assert_accepted(fast_auth, token_a, account.id)
    await assert_accepted(fast_auth, token_b, account.id)
    assert {kid_a, kid_b} <= await jwks_kids(fast_auth)


async def test_a_token_of_a_retired_key_is_refused_after_the_overlap(
    fast_auth: httpx.AsyncClient, committed: AsyncEngine, settings: Settings
) -> None:
    account = await signed_up(fast_auth)
    token_a = account.access_token
    kid_a = parts(token_a)[0]["kid"]

    await rotate_signing_key(committed, settings.master_key_value(), timedelta(seconds=1))
    await asyncio.sleep(1.5)

    await assert_token_refused(fast_auth, token_a)
    token_b = await new_access_token(fast_auth, account)
    await assert_accepted(fast_auth, token_b, account.id)
    assert kid_a not in await jwks_kids(fast_auth)


@pytest.mark.parametrize("lifetime", ["issued", "ten-years"])
async def test_a_token_used_before_its_key_retired_is_refused_after_the_overlap(
    fast_auth: httpx.AsyncClient, committed: AsyncEngine, settings: Settings, lifetime: str
) -> None:
    account = await signed_up(fast_auth)
    token = account.access_token
    if lifetime == "ten-years":  # what a thief of the old key would mint before an emergency rotation
        old_key = await current_key(committed, settings.master_key_value())
        token = old_key.token(claims_for(account.id, exp=int(time.time()) + 10 * 365 * 86400))
    await assert_accepted(fast_auth, token, account.id)

    await rotate_signing_key(committed, settings.master_key_value(), timedelta(seconds=1))
    await asyncio.sleep(1.5)

    await assert_token_refused(fast_auth, token)

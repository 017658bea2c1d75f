"""The kernel verifier with a JWKS that is not the auth service's own."""

from __future__ import annotations

import json

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cathouse.platform.security.tokens import JwksKeySource, KeysUnavailable, keys_from_jwks


def public_jwk(kid: str) -> dict[str, str]:
    jwk: dict[str, str] = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate().public_key()))
    jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
    return jwk


def test_a_jwks_keeps_its_good_keys_and_skips_the_rest() -> None:
    good = public_jwk("good")
    broken = {**public_jwk("broken"), "x": "not base64 at all!"}
    foreign = {**public_jwk("foreign"), "alg": "HS256"}
    unnamed = {k: v for k, v in public_jwk("x").items() if k != "kid"}
    keys = keys_from_jwks({"keys": [good, broken, foreign, unnamed]})
    assert list(keys) == ["good"]
    assert keys["good"].algorithm == "EdDSA"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (404, b"not here", "it answered 404"),
        (200, b"<html>sign in</html>", "its answer is not a JWKS"),
        (200, b"[]", "its answer is not a JWKS"),
        (200, b'{"keys": []}', "it lists no key we can use"),
    ],
)
async def test_a_jwks_source_without_keys_says_why(status: int, body: bytes, reason: str) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    async with httpx.AsyncClient(transport=transport) as client:
        source = JwksKeySource("http://auth.internal/jwks.json", client)
        with pytest.raises(KeysUnavailable) as caught:
            await source.check()
    assert caught.value.url == "http://auth.internal/jwks.json"
    assert caught.value.reason == reason


async def test_a_jwks_source_that_once_had_keys_stays_ready_while_a_refresh_fails() -> None:
    answers = [httpx.Response(200, json={"keys": [public_jwk("k1")]}), httpx.Response(503)]
    transport = httpx.MockTransport(lambda request: answers.pop(0))
    async with httpx.AsyncClient(transport=transport) as client:
        source = JwksKeySource("http://auth.internal/jwks.json", client, min_interval=0, max_age=0)
        await source.check()
        assert await source.get("k1") is not None  # stale: refetched, refused, the old key kept
        await source.check()
    assert answers == []
    assert source.error == "it answered 503"

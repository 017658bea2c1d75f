"""The kernel verifier with a JWKS that is not the auth service's own."""

from __future__ import annotations

import json

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cathouse.platform.security.tokens import keys_from_jwks


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

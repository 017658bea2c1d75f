"""Signing keys: Ed25519, the private half sealed by the master key, rotated without downtime.

The newest key not superseded signs. ``cathouse keys rotate-signing`` adds a key and marks the
old one superseded; the old one keeps verifying until ``retires_at`` (a token lifetime plus
leeway later), so no token that was valid is refused during the overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cathouse.auth.models import SigningKey
from cathouse.auth.repository import SigningKeyRepository
from cathouse.platform.crypto import DecryptionError, derive_key, seal, unseal
from cathouse.platform.security import VerificationKey
from cathouse.platform.security.tokens import keys_from_jwks

ALGORITHM = "EdDSA"
_PURPOSE = "cathouse/auth/signing-key/v1"


class SigningKeyError(RuntimeError):
    pass


def _sealing_key(master_key: str) -> bytes:
    return derive_key(master_key, _PURPOSE)


def new_signing_key(master_key: str) -> SigningKey:
    kid = secrets.token_urlsafe(12)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
    public.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    return SigningKey(
        kid=kid,
        algorithm=ALGORITHM,
        public_jwk=json.dumps(public),
        private_key_sealed=seal(_sealing_key(master_key), pem, kid.encode()),
    )


async def rotate(session: AsyncSession, master_key: str, overlap: timedelta) -> SigningKey:
    """Add a signing key; the previous ones verify for ``overlap`` more. The caller commits."""
    now = datetime.now(UTC)
    keys = SigningKeyRepository(session)
    await keys.supersede_current(now, retires_at=now + overlap)
    key = new_signing_key(master_key)
    keys.add(key)
    await session.flush()
    return key


class SigningKeys:
    """The auth service's keys: signs with the current one, and is the in-process ``KeySource``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], master_key: str, *, reload_every: float) -> None:
        self._sessions = sessions
        self._master_key = master_key
        self._reload_every = reload_every
        self._loaded_at = 0.0
        self._public: dict[str, VerificationKey] = {}
        self._jwks: list[dict[str, Any]] = []
        self._current: tuple[str, Ed25519PrivateKey] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Create the first key if there is none, and refuse to run if the master key cannot
        unseal the current one."""
        async with self._sessions() as session:
            keys = SigningKeyRepository(session)
            if await keys.current_kid() is None:
                keys.add(new_signing_key(self._master_key))
                await session.commit()
        await self.reload()

    async def reload(self) -> None:
        async with self._lock:
            await self._reload()

    async def _reload(self) -> None:
        now = datetime.now(UTC)
        async with self._sessions() as session:
            rows = await SigningKeyRepository(session).live(now)
        current = next((k for k in reversed(rows) if k.superseded_at is None), None)
        if current is None:
            raise SigningKeyError("no current signing key: run `cathouse keys rotate-signing`")
        try:
            pem = unseal(_sealing_key(self._master_key), current.private_key_sealed, current.kid.encode())
        except DecryptionError:
            raise SigningKeyError(
                "the master key cannot unseal the signing key: is CATHOUSE_MASTER_KEY the one it was made with?"
            ) from None
        private = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(private, Ed25519PrivateKey)
        self._jwks = [json.loads(k.public_jwk) for k in rows]
        self._public = keys_from_jwks({"keys": self._jwks})
        self._current = (current.kid, private)
        self._loaded_at = time.monotonic()

    async def keep_fresh(self) -> None:
        """Reload now and then, in the background, so a request never waits on a reload.

        A request that reloaded inline would take a second connection from the pool it
        already holds one of, and a full pool would then wait on itself.
        """
        while True:
            await asyncio.sleep(self._reload_every)
            try:
                await self.reload()
            except Exception as exc:  # the database may be away; keep the keys we have
                logger.warning("could not reload signing keys", error=type(exc).__name__)

    async def get(self, kid: str) -> VerificationKey | None:
        if kid not in self._public and time.monotonic() - self._loaded_at > 1.0:
            # Perhaps rotated by another process since the last load: look once, briefly.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self.reload()
        return self._public.get(kid)

    async def jwks(self) -> dict[str, Any]:
        return {"keys": self._jwks}

    async def sign(self, claims: dict[str, Any]) -> str:
        assert self._current is not None, "SigningKeys.start() was not awaited"
        kid, private = self._current
        return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": kid})

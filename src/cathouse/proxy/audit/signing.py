"""The key that signs audit checkpoints: Ed25519, read from a file the database never sees.

The proxy holds the private key (``CATHOUSE_AUDIT__SIGNING_KEY``, a path); whoever verifies needs
only the public key, which the proxy serves at ``GET /api/v1/proxy/audit/public-key``. A key is
named by its id: the first 16 hex digits of the SHA-256 of its raw public bytes.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cathouse.platform.settings import Environment, Settings

ALGORITHM = "Ed25519"
DEV_KEY_NAME = "audit-signing.pem"


class SigningKeyError(Exception):
    """The signing key (or a public key to verify with) is missing or not an Ed25519 key."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public key that verifies checkpoints, with its id."""

    key: Ed25519PublicKey

    @property
    def raw(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    @property
    def pem(self) -> str:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def from_raw(cls, raw: bytes) -> PublicKey:
        try:
            return cls(Ed25519PublicKey.from_public_bytes(raw))
        except ValueError as exc:
            raise SigningKeyError(f"not an Ed25519 public key: {exc}") from None

    @classmethod
    def from_pem(cls, data: bytes, source: str) -> PublicKey:
        """A PEM public key (as the proxy serves it), or a private key's public half."""
        try:
            if b"PRIVATE KEY" in data:
                return _private(serialization.load_pem_private_key(data, password=None), source).public
            public = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"{source} is not a PEM Ed25519 key: {exc}") from None
        if not isinstance(public, Ed25519PublicKey):
            raise SigningKeyError(f"{source} is not an Ed25519 key")
        return cls(public)

    @classmethod
    def load(cls, path: Path) -> PublicKey:
        return cls.from_pem(_read(path), str(path))


@dataclass(frozen=True, slots=True)
class Signer:
    key: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


def _private(key: object, source: str) -> Signer:
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{source} is not an Ed25519 key")
    return Signer(key)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_signer(path: Path) -> Signer:
    """The private key in ``path``: PEM (PKCS#8, unencrypted) or the raw 32-byte seed."""
    data = _read(path)
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            return _private(serialization.load_pem_private_key(data, password=None), str(path))
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"{path} is not an unencrypted PEM Ed25519 private key: {exc}") from None
    if len(data) == 32:
        return Signer(Ed25519PrivateKey.from_private_bytes(data))
    raise SigningKeyError(f"{path} holds neither a PEM Ed25519 private key nor a raw 32-byte seed")


def write_new_key(path: Path) -> bool:
    """Write a new private key (PEM, owner-only) to ``path``, unless a file is there already
    (another process won the race): whether this call wrote it."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return True


def signer_from_settings(settings: Settings) -> Signer:
    """The configured key; outside production, without one, a key generated once into the data dir."""
    path = settings.audit.signing_key
    if path is None:
        if settings.env is Environment.PRODUCTION:
            raise SigningKeyError(
                "CATHOUSE_AUDIT__SIGNING_KEY must name the audit signing key's file in production: "
                "create one with `openssl genpkey -algorithm ed25519 -out audit-signing.pem`"
            )
        path = settings.secrets_dir / DEV_KEY_NAME
        write_new_key(path)
    return load_signer(path)


def configured_public_key(settings: Settings) -> PublicKey | None:
    """The public half of the configured key (or of the development key, when one was made)."""
    path = settings.audit.signing_key or settings.secrets_dir / DEV_KEY_NAME
    if settings.audit.signing_key is None and not path.exists():
        return None
    return load_signer(path).public

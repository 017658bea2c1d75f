"""Signing and verifying Cat House webhooks, in the Standard Webhooks form (standardwebhooks.com).

Cat House sends each provisioning event (install, permission changes, suspend, resume,
uninstall) to a cat's webhook URL with three headers: ``webhook-id``, ``webhook-timestamp``
(Unix seconds) and ``webhook-signature``, a space-separated list of ``v1,<base64 HMAC-SHA256>``
over ``{id}.{timestamp}.{body}``, one per live secret, so a rotation needs no downtime. The
output is byte-for-byte that of the reference library, and any Standard Webhooks library can
verify it. This module needs only the standard library: a cat may import it or copy it.

A cat's handler (FastAPI; in Flask pass ``request.headers`` and ``request.get_data()``)::

    SECRETS = os.environ["CATHOUSE_WEBHOOK_SECRETS"].split()  # whsec_..., old and new while rotating

    @app.post("/cathouse/webhooks")
    async def cathouse_webhook(request: Request) -> Response:
        body = await request.body()  # the raw bytes: parse only what has been verified
        try:
            webhooks.verify(SECRETS, request.headers, body)
        except webhooks.WebhookVerificationError:
            return Response(status_code=401)
        handle(json.loads(body), idempotency_key=request.headers["webhook-id"])
        return Response(status_code=204)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterator, Mapping, Sequence
from secrets import token_bytes

__all__ = [
    "DEFAULT_TOLERANCE",
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "generate_secret",
    "headers",
    "sign",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the marker of the format, not a secret
DEFAULT_TOLERANCE = 300
"""Seconds a timestamp may be off in either direction: the reference libraries' five minutes."""

_VERSION = "v1"
_SECRET_BYTES = 32


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh webhook: answer 4xx and do not act on it."""


def generate_secret() -> str:
    """A new signing secret, ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(_SECRET_BYTES)).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery under one secret."""
    digest = _digest(_key(secret), msg_id, timestamp, body)
    return f"{_VERSION},{base64.b64encode(digest).decode('ascii')}"


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a sender attaches: one signature per secret, in the order given."""
    keys = _secrets_of(secrets)
    if not msg_id or "." in msg_id:
        # The id is a field of the signed content: a dot would let two id/timestamp pairs collide.
        raise ValueError("a webhook id must be non-empty and contain no '.'")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, msg_id, timestamp, body) for secret in keys),
    }


def verify(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> None:
    """Return if any ``v1`` signature in ``headers`` is ``body``'s under any of the secrets.

    Raises ``WebhookVerificationError`` for a missing header, a timestamp that is not an
    integer or is more than ``tolerance`` seconds from ``now`` (default: the clock), or no
    matching signature; ``ValueError`` for a secret that is not one (a configuration error).
    """
    keys = [_key(one) for one in _secrets_of(secret)]
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and raw_timestamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    timestamp = _timestamp(raw_timestamp)
    current = int(time.time()) if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("webhook timestamp too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("webhook timestamp too new")
    expected = [_digest(key, msg_id, timestamp, body) for key in keys]
    for candidate in _v1_signatures(signatures):
        for digest in expected:
            if hmac.compare_digest(candidate, digest):
                return
    raise WebhookVerificationError("no matching webhook signature")


def _secrets_of(secret: str | Sequence[str]) -> list[str]:
    # A lone str is itself a Sequence[str]: without this it would be read as one secret per character.
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("at least one webhook secret is needed")
    return secrets


def _key(secret: str) -> bytes:
    """The HMAC key: the base64 after an optional ``whsec_`` prefix, padding optional, as the reference reads it.

    Unlike the reference, anything that is not base64 is refused rather than silently dropped,
    so a mangled secret fails loudly at the first delivery instead of as a mismatch.
    """
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is base64, optionally prefixed with 'whsec_'") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def _timestamp(raw: str) -> int:
    value = raw.strip()
    if not (value.isascii() and value.isdigit()):
        raise WebhookVerificationError("webhook-timestamp is not an integer of Unix seconds")
    return int(value)


def _v1_signatures(header: str) -> Iterator[bytes]:
    """The decoded ``v1`` signatures; other versions (``v1a``, ...) and malformed entries are skipped."""
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if version != _VERSION or not comma:
            continue
        try:
            yield base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue

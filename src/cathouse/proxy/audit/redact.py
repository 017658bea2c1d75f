"""Redaction of secret-looking query values before a path is stored."""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
# A name that is one of these, or ends with "_" and one of these, holds a secret.
_SECRET_NAMES = frozenset(
    [
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "secret",
        "client_secret",
        "secret_key",
        "access_key",
        "private_key",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "signature",
        "sig",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "session",
        "session_id",
        "sessionid",
    ]
)
# Secret only as the whole name: as suffixes they would hide `country_code` or `sort_key`.
_EXACT_NAMES = frozenset({"key", "code", "auth_code"})
# Run-together spellings (`apitoken`, `xapikey`) still end with one of these.
_SECRET_ENDINGS = ("token", "apikey", "secret", "password", "passwd", "signature", "credential", "credentials")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def _normalized(name: str) -> str:
    return _SEPARATORS.sub("_", _CAMEL.sub("_", name).lower()).strip("_")


def looks_secret(name: str) -> bool:
    normal = _normalized(name)
    if normal in _EXACT_NAMES or normal in _SECRET_NAMES:
        return True
    if any(normal.endswith("_" + word) for word in _SECRET_NAMES):
        return True
    return normal.replace("_", "").endswith(_SECRET_ENDINGS)


def redact_query(query: str, extra: Collection[str] = ()) -> str:
    """``query`` as sent, but the values of parameters that look like secrets, and of those named
    in ``extra`` (any case), replaced by ``[redacted]``."""
    if not query:
        return query
    named = {n.lower() for n in extra}
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if sep and value:
            decoded = unquote_plus(name)
            if decoded.lower() in named or looks_secret(decoded):
                part = f"{name}={REDACTED}"
        parts.append(part)
    return "&".join(parts)


def audit_path(path: str, query: str = "", extra: Collection[str] = ()) -> str:
    """The path an audit record stores: ``path?query`` with secret-looking values redacted."""
    return f"{path}?{redact_query(query, extra)}" if query else path

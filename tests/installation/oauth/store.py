"""The provider's in-memory state: clients, codes, tokens and the counters tests read back.

The server is threaded, so every read-modify-write goes through ``Store.lock``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin

AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
COUNTERS = (
    "codes_exchanged",
    "refreshes",
    "refresh_failures",
    "client_credentials",
    "revocations",
    "api_calls",
    "api_rejected",
    "reused_refresh_tokens",
)


def short_id(secret: str) -> str:
    """A token's name fit for logs and stats: tests can compare it without the token being shown."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scope: str
    grant_types: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return self.scope
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    """One grant of an access token and, for user grants, the refresh token issued with it."""

    client: Client
    access_token: str
    refresh_token: str | None
    scope: str
    user: str | None
    expires_in: float
    issued_at: float = field(default_factory=time.time)
    access_revoked: bool = False
    refresh_revoked: bool = False
    # Set when the refresh token was exchanged, so that a second use is told apart from a
    # revoked one in the stats.
    rotated: bool = False

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def sub(self) -> str:
        return self.user or self.client_id

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> float:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.access_revoked

    def get_user(self) -> str | None:
        return self.user

    def get_client(self) -> Client:
        return self.client


class Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access: dict[str, Token] = {}
        self.refresh: dict[str, Token] = {}
        self.token_mode = "normal"
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.refresh_log: list[dict[str, Any]] = []

    def count(self, name: str) -> None:
        with self.lock:
            self.counters[name] += 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {**self.counters, "refresh_log": list(self.refresh_log)}

    def reset(self) -> None:
        with self.lock:
            self.counters = dict.fromkeys(COUNTERS, 0)
            self.refresh_log = []
            self.token_mode = "normal"

    def register(self, redirect_uris: list[str], scope: str, grant_types: list[str]) -> Client:
        client = Client(secrets.token_urlsafe(12), secrets.token_urlsafe(24), redirect_uris, scope, grant_types)
        with self.lock:
            self.clients[client.client_id] = client
        return client

    def add_token(self, token: Token) -> None:
        with self.lock:
            self.access[token.access_token] = token
            if token.refresh_token:
                self.refresh[token.refresh_token] = token

    def find_refresh(self, refresh_token: str) -> Token | None:
        """The grant of a refresh token still good for one exchange."""
        with self.lock:
            token = self.refresh.get(refresh_token)
            if token is None or token.refresh_revoked:
                if token is not None and token.rotated:
                    self.counters["reused_refresh_tokens"] += 1
                return None
            return token

    def take_code(self, code: str) -> AuthorizationCode | None:
        """The code, removed: of two exchanges racing for one code, only one gets it."""
        with self.lock:
            found = self.codes.pop(code, None)
        return found if found and found.expires_at > time.time() else None

    def rotate(self, token: Token) -> bool:
        """Marks a refresh token used, once: of two refreshes racing with it, only one wins."""
        with self.lock:
            if token.rotated or token.refresh_revoked:
                if token.rotated:
                    self.counters["reused_refresh_tokens"] += 1
                return False
            token.rotated = token.refresh_revoked = True
            self.counters["refreshes"] += 1
            assert token.refresh_token is not None
            self.refresh_log.append(
                {"at": time.time(), "old_refresh_token_id": short_id(token.refresh_token), "sub": token.sub}
            )
            return True

    def revoke_user(self, sub: str) -> int:
        with self.lock:
            tokens = [t for t in self.access.values() if t.user == sub]
            for token in tokens:
                token.access_revoked = token.refresh_revoked = True
            for code in [c for c, item in self.codes.items() if item.user == sub]:
                del self.codes[code]
        return len(tokens)

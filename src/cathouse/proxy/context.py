"""What the proxy needs to mediate a call to one installation, loaded once and kept a few seconds.

Every request needs the installation's owner, state, grants, its version's endpoint map,
credential scheme and rate plan, and the decrypted secrets. Reading them costs several
queries and a decryption; keeping them for ``context_cache_ttl`` seconds (5 by default) makes
a request a dict lookup, at the price of a suspension or a revoked grant taking up to that
long to reach a running proxy. API keys are kept the same way, by the key's hash.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cathouse.contracts.reads import CatReader, InstallationReader, KeyOwner
from cathouse.contracts.secrets import AccessToken, SecretReader
from cathouse.platform.cache import Cache
from cathouse.proxy.routes import RouteMap

# The states in which calls go through (credentials_invalid: a success moves it back).
RUNNING = frozenset({"active", "permissions_pending", "credentials_invalid"})

# Entries kept per cache: far more installations and keys than one process serves at once.
_KEPT = 10_000


@dataclass(slots=True)
class InstallationContext:
    id: uuid.UUID
    owner_id: uuid.UUID
    cat_id: uuid.UUID
    cat_slug: str
    cat_status: str
    status: str
    granted: frozenset[str]
    base_url: str
    routes: RouteMap
    rate_limit: int
    # Headers to add to every call, and a query parameter (name, value) when the cat wants one.
    inject_headers: list[tuple[bytes, bytes]]
    inject_query: tuple[str, str] | None
    # An OAuth 2.0 cat: where its access token goes ("header", or the query parameter's name), and
    # the token this process holds now (injected as inject_headers or inject_query).
    oauth: str | None = None
    token: AccessToken | None = None
    # Set once this process has reported the cat's verdict on the credentials, so it reports each change once.
    reported: str | None = field(default=None)
    # The ids as the rate limiter names its counters, spelled once rather than on every call.
    id_text: str = field(init=False, repr=False)
    owner_text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.id_text = str(self.id)
        self.owner_text = str(self.owner_id)

    @property
    def running(self) -> bool:
        return self.status in RUNNING and self.cat_status == "published"


def injection(
    scheme: dict[str, Any], secrets: dict[str, str]
) -> tuple[list[tuple[bytes, bytes]], tuple[str, str] | None]:
    """The headers and query parameter that carry the installation's credentials, as its version declares."""
    kind = scheme.get("type")
    if kind == "bearer" and scheme["field"] in secrets:
        return [(b"authorization", b"Bearer " + secrets[scheme["field"]].encode())], None
    if kind == "basic":
        user, password = secrets.get(scheme["username_field"], ""), secrets.get(scheme["password_field"], "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return [(b"authorization", b"Basic " + token.encode())], None
    if kind == "header" and scheme["field"] in secrets:
        return [(scheme["header"].lower().encode(), secrets[scheme["field"]].encode())], None
    if kind == "query" and scheme["field"] in secrets:
        return [], (scheme["param"], quote(secrets[scheme["field"]], safe=""))
    return [], None


class Contexts:
    """Installation contexts and API keys, read through what the installation and catalog
    services registered (see ``cathouse.contracts``)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        installations: InstallationReader,
        cats: CatReader,
        secrets: SecretReader,
        ttl: float,
    ) -> None:
        self.sessions = sessions
        self.installations = installations
        self.cats = cats
        self.secrets = secrets
        self._contexts: Cache[uuid.UUID, InstallationContext | None] = Cache(_KEPT, ttl)
        self._keys: Cache[bytes, KeyOwner | None] = Cache(_KEPT, ttl)

    async def current_token(self, context: InstallationContext, *, rejected: bool = False) -> None:
        """Give an OAuth 2.0 context a current access token: the one it holds until a refresh is
        due, else whatever the token keeper has (refreshing once across processes). ``rejected``:
        the cat refused the one held. Raises ``TokenUnavailable``."""
        held = context.token
        if not rejected and held is not None and (held.refresh_at is None or time.time() < held.refresh_at):
            return
        refused = held.generation if rejected and held is not None else None
        token = await self.secrets.access_token(context.id, rejected=refused)
        context.token = token
        if context.oauth == "header":
            context.inject_headers = [(b"authorization", b"Bearer " + token.value.encode())]
        elif context.oauth is not None:
            context.inject_query = (context.oauth, quote(token.value, safe=""))

    def forget(self, installation_id: uuid.UUID) -> None:
        self._contexts.discard(installation_id)

    async def installation(self, installation_id: uuid.UUID) -> InstallationContext | None:
        return await self._contexts.load(installation_id, self._load)

    async def api_key(self, key: str) -> KeyOwner | None:
        digest = hashlib.sha256(key.encode()).digest()
        return await self._keys.load(digest, lambda _: self._load_key(key))

    async def _load_key(self, key: str) -> KeyOwner | None:
        async with self.sessions() as session:
            return await self.installations.api_key_owner(session, key)

    async def _load(self, installation_id: uuid.UUID) -> InstallationContext | None:
        async with self.sessions() as session:
            view = await self.installations.proxy_view(session, installation_id)
            if view is None:
                return None
            version = await self.cats.version_by_id(session, view.version_id)
            cat = (await self.cats.cats_by_id(session, [view.cat_id])).get(view.cat_id)
            if version is None or cat is None:
                return None
            secrets = await self.secrets.secrets(session, installation_id) if view.status in RUNNING else {}
        headers, query = injection(version.credentials, secrets)
        scheme = version.credentials
        oauth = None
        if scheme.get("type") == "oauth2":
            oauth = "header" if scheme.get("token_placement", "header") == "header" else scheme["query_param"]
        return InstallationContext(
            id=view.id,
            owner_id=view.user_id,
            cat_id=view.cat_id,
            cat_slug=cat.slug,
            cat_status=cat.status,
            status=view.status,
            granted=view.granted,
            base_url=version.base_url,
            routes=RouteMap(version.endpoints),
            rate_limit=version.rate_limit_per_minute,
            inject_headers=headers,
            inject_query=query,
            oauth=oauth,
        )

"""What a service may read of another's data: the values, and the readers that return them.

The owning service implements each reader over its own schema (its ``queries.py``) and
registers it with the kernel at start-up (see ``cathouse.services``); a consumer looks it up by
the Protocol and never imports the owner. The readers take the caller's ``AsyncSession``: one
database, so a read across schemas is one query in the caller's transaction. Values are plain
and frozen, never ORM rows, so the owner may change its tables without the readers' users noticing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession


def secret_fields(settings_schema: dict[str, Any]) -> list[str]:
    """The settings a version marks ``writeOnly``: kept encrypted, shown to nobody, injected by the proxy."""
    properties = settings_schema.get("properties", {})
    return sorted(name for name, spec in properties.items() if isinstance(spec, dict) and spec.get("writeOnly") is True)


@dataclass(frozen=True)
class CatInfo:
    id: uuid.UUID
    slug: str
    name: str
    status: str
    publisher_id: uuid.UUID | None
    current_version_id: uuid.UUID | None


@dataclass(frozen=True)
class VersionInfo:
    """One published version: everything installations and the proxy act on."""

    id: uuid.UUID
    cat_id: uuid.UUID
    version: str
    base_url: str
    credentials: dict[str, Any]
    permissions: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    settings_schema: dict[str, Any]
    webhook_url: str | None
    rate_limit_per_minute: int

    @property
    def secret_fields(self) -> list[str]:
        return secret_fields(self.settings_schema)

    @property
    def required_permissions(self) -> set[str]:
        return {p["name"] for p in self.permissions if p.get("required", True)}

    @property
    def permission_names(self) -> set[str]:
        return {p["name"] for p in self.permissions}


@dataclass(frozen=True)
class OAuthClientInfo:
    """A cat's OAuth 2.0 client at its provider, secret included: for speaking to the provider only."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class InstallCounts:
    total: int
    active: int


@dataclass(frozen=True)
class ProxyView:
    """What the proxy enforces for one installation: who owns it, its state, its pinned
    version and what its owner granted."""

    id: uuid.UUID
    user_id: uuid.UUID
    cat_id: uuid.UUID
    version_id: uuid.UUID
    status: str
    granted: frozenset[str]


@dataclass(frozen=True)
class KeyOwner:
    api_key_id: uuid.UUID
    installation_id: uuid.UUID


@dataclass(frozen=True)
class DayCalls:
    day: date
    # Every call to the cat the proxy recorded, and those it let through to the cat.
    calls: int
    allowed: int


class AccountReader(Protocol):
    """Auth's accounts, read-only and nothing secret."""

    async def display_names(self, session: AsyncSession, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]: ...

    async def active_developer_by_email(self, session: AsyncSession, email: str) -> uuid.UUID | None:
        """The id of an active account with the developer (or admin) role, by its email."""
        ...


class CatReader(Protocol):
    """The catalog's cats and versions."""

    async def cat_by_slug(self, session: AsyncSession, slug: str) -> CatInfo | None: ...

    async def cats_by_id(self, session: AsyncSession, cat_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, CatInfo]: ...

    async def published_version(self, session: AsyncSession, cat_id: uuid.UUID, version: str) -> VersionInfo | None: ...

    async def version_by_id(self, session: AsyncSession, version_id: uuid.UUID) -> VersionInfo | None: ...

    async def versions_by_id(
        self, session: AsyncSession, version_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, VersionInfo]: ...

    async def webhook_signing_secrets(self, session: AsyncSession, cat_id: uuid.UUID, master_key: str) -> list[str]:
        """The secrets a provisioning webhook to this cat is signed with now (two during a rotation)."""
        ...

    async def oauth_client(self, session: AsyncSession, cat_id: uuid.UUID, master_key: str) -> OAuthClientInfo | None:
        """The OAuth 2.0 client its publisher set for the cat, to call the cat's provider with."""
        ...


class InstallationReader(Protocol):
    """Installations and their API keys; never their credentials (see ``contracts.secrets``)."""

    async def install_counts(self, session: AsyncSession, cat_id: uuid.UUID) -> InstallCounts:
        """Installs of a cat that were provisioned (ever, and running now)."""
        ...

    async def has_installed(self, session: AsyncSession, user_id: uuid.UUID, cat_id: uuid.UUID) -> bool:
        """Whether the user ever had an installation of the cat provisioned (a verified reviewer)."""
        ...

    async def proxy_view(self, session: AsyncSession, installation_id: uuid.UUID) -> ProxyView | None: ...

    async def api_key_owner(self, session: AsyncSession, key: str) -> KeyOwner | None:
        """The installation an unrevoked API key belongs to, found by the key's hash."""
        ...


class AuditReader(Protocol):
    """The proxy's audit log, counted."""

    async def calls_per_day(
        self, session: AsyncSession, cat_id: uuid.UUID, days: int, *, today: date | None = None
    ) -> list[DayCalls]:
        """Calls through the proxy to ``cat_id`` on each of the last ``days`` UTC days, oldest
        first, today included (days without calls count 0)."""
        ...

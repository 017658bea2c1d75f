"""What the installation service publishes: an installation's lifecycle, consent and changes.

Every payload names the installation, its owner, its cat and its version; the aggregate is the
installation. No payload carries a secret or a setting's value: ``fields`` names fields only.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from cathouse.contracts.events.base import DomainEvent

InstallationStatus = Literal[
    "pending",
    "authorizing",
    "provisioning",
    "active",
    "failed",
    "suspended",
    "permissions_pending",
    "credentials_invalid",
    "uninstalling",
    "uninstalled",
]


class InstallationEvent(DomainEvent):
    aggregate: ClassVar[str] = "installation"
    aggregate_key: ClassVar[str] = "installation_id"

    installation_id: UUID = Field(description="The installation.")
    user_id: UUID = Field(description="Its owner.")
    cat_id: UUID = Field(description="The cat installed.")
    version: str = Field(description="The cat's version the installation runs (after the change).")


class InstallationCreated(InstallationEvent):
    """A user installed a cat; the installation starts pending."""

    type: ClassVar[str] = "installation.created"

    name: str = Field(description="The owner's name for the installation.")
    permissions: list[str] = Field(description="The permissions granted.")


class InstallationStatusChanged(InstallationEvent):
    """An installation moved through its lifecycle (pending, provisioning, active, ..., uninstalled)."""

    type: ClassVar[str] = "installation.status_changed"
    sometimes: ClassVar[frozenset[str]] = frozenset({"by_admin"})

    from_: InstallationStatus = Field(alias="from", description="The status before.")
    to: InstallationStatus = Field(description="The status now.")
    reason: str | None = Field(description="Why, when someone said (or the platform knows).")
    by: UUID | None = Field(description="Who moved it; null when the platform did.")
    by_admin: bool | None = Field(
        default=None,
        description="Present (true) only when an admin suspended or uninstalled another user's installation.",
    )


class InstallationPermissionsChanged(InstallationEvent):
    """The owner's consent changed."""

    type: ClassVar[str] = "installation.permissions_changed"

    granted: list[str] = Field(description="Permissions granted by this change.")
    revoked: list[str] = Field(description="Permissions revoked by this change.")


class InstallationUpgraded(InstallationEvent):
    """The installation moved to another version of its cat (``version`` is the new one)."""

    type: ClassVar[str] = "installation.upgraded"

    from_version: str = Field(description="The version it ran before.")


class InstallationUpdated(InstallationEvent):
    """The installation's name or settings changed."""

    type: ClassVar[str] = "installation.updated"

    fields: list[str] = Field(description="The names of the fields that changed, never their values.")


class InstallationSecretsReplaced(InstallationEvent):
    """Secret fields were replaced."""

    type: ClassVar[str] = "installation.secrets_replaced"

    fields: list[str] = Field(description="The names of the secret fields replaced, never their values.")


EVENTS: tuple[type[DomainEvent], ...] = (
    InstallationCreated,
    InstallationStatusChanged,
    InstallationPermissionsChanged,
    InstallationUpgraded,
    InstallationUpdated,
    InstallationSecretsReplaced,
)

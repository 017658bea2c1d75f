"""The installation schema: installations, consent, sealed credentials, API keys, webhook deliveries.

Foreign keys to auth.users and the catalog's cats and versions live in the migration; the ORM
maps this schema only.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cathouse.platform.db import schema_metadata, string_enum


class Base(DeclarativeBase):
    metadata = schema_metadata("installation")


class InstallationStatus(enum.StrEnum):
    """Where an installation is in its life; the moves between them are in ``lifecycle``."""

    PENDING = "pending"
    # Waiting for its owner to grant access at the cat's OAuth 2.0 provider.
    AUTHORIZING = "authorizing"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    FAILED = "failed"
    SUSPENDED = "suspended"
    PERMISSIONS_PENDING = "permissions_pending"
    CREDENTIALS_INVALID = "credentials_invalid"
    UNINSTALLING = "uninstalling"
    UNINSTALLED = "uninstalled"


class Recipient(enum.StrEnum):
    """Who a webhook delivery goes to: the installed cat, or the installation's owner."""

    CAT = "cat"
    OWNER = "owner"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Installation(Base):
    __tablename__ = "installations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    cat_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    version_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # An upgrade that asks for more than was granted waits here for the owner's consent.
    target_version_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[InstallationStatus] = mapped_column(string_enum(InstallationStatus, 24))
    status_reason: Mapped[str | None] = mapped_column(String(500))
    # Suspended by an admin acting on someone else's installation: only an admin resumes it.
    suspended_by_moderator: Mapped[bool] = mapped_column(Boolean, server_default=false())
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    uninstalled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class GrantedPermission(Base):
    """Consent: one row per permission the owner granted, with when and by whom."""

    __tablename__ = "installation_permissions"

    installation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("installation.installations.id", ondelete="CASCADE"), primary_key=True
    )
    permission: Mapped[str] = mapped_column(String(64), primary_key=True)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    granted_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))


class MasterKeyVersion(Base):
    """A key-encryption key; its bytes are sealed by the master key from settings."""

    __tablename__ = "master_key_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DataKey(Base):
    """An installation's own data key, wrapped by one master-key version; None once destroyed."""

    __tablename__ = "data_keys"

    installation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("installation.installations.id", ondelete="CASCADE"), primary_key=True
    )
    key_version: Mapped[int] = mapped_column(ForeignKey("installation.master_key_versions.version"))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Credential(Base):
    """One secret field, encrypted with the installation's data key, bound to (installation, field)."""

    __tablename__ = "credentials"

    installation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("installation.installations.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint: Mapped[str] = mapped_column(String(16))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    """A key the owner's application calls the proxy with; only its hash is kept."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    installation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("installation.installations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One webhook, made from one outbox event, retried until it lands or fails: a provisioning
    webhook to the cat, or a notification to the owner's own webhook (``recipient``)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    # Creation order: an installation's deliveries leave one at a time, in this order.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    installation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("installation.installations.id", ondelete="CASCADE"), index=True
    )
    cat_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    source_event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[Recipient] = mapped_column(string_enum(Recipient, 8), server_default=Recipient.CAT.value)
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[DeliveryStatus] = mapped_column(
        string_enum(DeliveryStatus, 16), server_default=DeliveryStatus.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_status: Mapped[int | None] = mapped_column(SmallInteger)
    last_latency_ms: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    response_excerpt: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OwnerWebhook(Base):
    """A user's own webhook: told when one of their installations needs them (its credentials broke).
    Its signing secret is sealed (``owner_webhooks``), bound to the user."""

    __tablename__ = "owner_webhooks"

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("installation.webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status: Mapped[int | None] = mapped_column(SmallInteger)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    response_excerpt: Mapped[str | None] = mapped_column(String(500))


class OAuthToken(Base):
    """An installation's tokens from its cat's OAuth 2.0 provider, sealed with its data key.

    ``generation`` counts refreshes: a process that read generation n and finds n+1 under the
    lock knows another one refreshed, and uses that result instead of refreshing again.
    """

    __tablename__ = "oauth_tokens"

    installation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("installation.installations.id", ondelete="CASCADE"), primary_key=True
    )
    access_token: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_type: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str | None] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    generation: Mapped[int] = mapped_column(Integer, server_default="1")


class OAuthState(Base):
    """One authorization request in flight: single-use, bound to its user and installation.

    Only the state's hash is kept, and the PKCE verifier is sealed, so a read of this table
    cannot complete anyone's authorization.
    """

    __tablename__ = "oauth_states"

    state_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    installation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("installation.installations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    sealed_verifier: Mapped[bytes | None] = mapped_column(LargeBinary)
    return_to: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

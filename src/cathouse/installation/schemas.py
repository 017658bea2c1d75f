"""API models of installations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cathouse.contracts.permissions import PermissionName
from cathouse.installation.models import InstallationStatus
from cathouse.platform.schemas import NonBlankLine, SingleLine, Strict

# Every status, as a Literal of the enum's members: the OpenAPI document lists the values in place.
Status = Literal[
    InstallationStatus.PENDING,
    InstallationStatus.AUTHORIZING,
    InstallationStatus.PROVISIONING,
    InstallationStatus.ACTIVE,
    InstallationStatus.FAILED,
    InstallationStatus.SUSPENDED,
    InstallationStatus.PERMISSIONS_PENDING,
    InstallationStatus.CREDENTIALS_INVALID,
    InstallationStatus.UNINSTALLING,
    InstallationStatus.UNINSTALLED,
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64), NonBlankLine]
SecretValue = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Secrets = Annotated[dict[Annotated[str, StringConstraints(max_length=64)], SecretValue], Field(max_length=32)]
SettingsValues = Annotated[dict[Annotated[str, StringConstraints(max_length=64)], Any], Field(max_length=100)]


class InstallIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "cat": "points-ledger",
                    "name": "Main",
                    "permissions": ["points:read", "points:write"],
                    "settings": {"currency": "coins"},
                    "secrets": {"api_token": "sk-live-0123456789abcdef01"},
                }
            ]
        }
    )

    cat: str = Field(max_length=63, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", description="The cat's slug.")
    version: str | None = Field(default=None, max_length=64, description="Default: the cat's current version.")
    name: Name = Field(description="Unique among your installations; you may run several of one cat.")
    permissions: list[PermissionName] = Field(
        max_length=50, description="What you grant: every required permission of the version, and any optional ones."
    )
    settings: SettingsValues = Field(default_factory=dict, description="Values for the version's settings schema.")
    secrets: Secrets = Field(default_factory=dict, description="The secret (writeOnly) fields; never shown again.")


class InstallationUpdate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Main (EU)", "settings": {"currency": "xp"}}]})

    name: Name | None = None
    settings: SettingsValues | None = None


class SecretsIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"secrets": {"api_token": "sk-live-fedcba9876543210fe"}}]}
    )

    secrets: Secrets


class UpgradeIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": "1.1.0"}]})

    version: str = Field(max_length=64)


class PermissionsIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"permissions": ["points:read"]}]})

    permissions: list[PermissionName] = Field(max_length=50, description="Every permission granted from now on.")


class Grant(BaseModel):
    permission: str
    granted_at: datetime
    granted_by: uuid.UUID


class SecretField(BaseModel):
    field: str
    fingerprint: str = Field(description="Changes when the value changes; reveals nothing about it.")
    set_at: datetime


class InstallationCatRef(BaseModel):
    id: uuid.UUID
    slug: str
    name: str


class InstallationOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "2f6e8d4c-3b1a-4c9e-8f7d-5a6b7c8d9e0f",
                    "name": "Main",
                    "user_id": "0b7e4c1e-4f7a-4d0e-9a57-3f6f1d2c8a10",
                    "cat": {
                        "id": "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
                        "slug": "points-ledger",
                        "name": "Points Ledger",
                    },
                    "version": "1.1.0",
                    "target_version": None,
                    "status": "active",
                    "status_reason": None,
                    "suspended_by_moderator": False,
                    "settings": {"currency": "coins"},
                    "permissions": [
                        {
                            "permission": "points:read",
                            "granted_at": "2026-05-01T12:00:00Z",
                            "granted_by": "0b7e4c1e-4f7a-4d0e-9a57-3f6f1d2c8a10",
                        }
                    ],
                    "secrets": [{"field": "api_token", "fingerprint": "5f0c1a2b", "set_at": "2026-05-01T12:00:00Z"}],
                    "created_at": "2026-05-01T12:00:00Z",
                    "updated_at": "2026-05-01T12:00:05Z",
                    "activated_at": "2026-05-01T12:00:05Z",
                }
            ]
        }
    )

    id: uuid.UUID
    name: str
    user_id: uuid.UUID
    cat: InstallationCatRef
    version: str
    target_version: str | None = Field(description="An upgrade waiting for you to accept new permissions.")
    status: Status
    status_reason: str | None
    suspended_by_moderator: bool = Field(
        description="An admin suspended it: only an admin can resume it, not its owner."
    )
    settings: dict[str, Any]
    permissions: list[Grant]
    secrets: list[SecretField]
    created_at: datetime
    updated_at: datetime
    activated_at: datetime | None


class InstallationPage(BaseModel):
    items: list[InstallationOut]
    next_cursor: str | None


class InstallationReason(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "Paused while we migrate our users."}]})

    reason: Annotated[str, StringConstraints(max_length=500), SingleLine] = ""

"""API models of the proxy's audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class AuditEntry(BaseModel):
    """One call through the proxy, allowed or refused."""

    seq: int = Field(description="The record's position in the audit chain; newer records have larger ones.")
    at: datetime
    request_id: str
    user_id: uuid.UUID | None = Field(description="Who called; absent when the caller was not authenticated.")
    owner_id: uuid.UUID | None = Field(description="The owner of the installation called.")
    installation_id: uuid.UUID | None
    cat_id: uuid.UUID | None
    api_key_id: uuid.UUID | None = Field(description="The installation API key used, when one was.")
    method: str
    path: str = Field(description="As sent, with the values of secret-looking query parameters redacted.")
    decision: str = Field(description="allowed, or why the call was refused or failed.")
    status: int = Field(description="The status the proxy answered with.")
    upstream_status: int | None = Field(description="The cat's own status, when the call reached it.")
    latency_ms: float
    bytes_in: int
    bytes_out: int


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; absent on the last one.")


class AuditPublicKey(BaseModel):
    """The key that verifies the audit chain's signed checkpoints (``cathouse audit verify --checkpoints``)."""

    algorithm: Literal["Ed25519"] = "Ed25519"
    key_id: str = Field(
        description="Names the key in every checkpoint it signed: the first 16 hex digits of the "
        "SHA-256 of the raw public key."
    )
    public_key: str = Field(description="The raw 32-byte public key, base64url without padding.")
    pem: str = Field(description="The same key as a PEM SubjectPublicKeyInfo (`--public-key FILE` reads it).")

"""The provisioning webhooks the installation service sends to a cat's ``webhook_url``.

Each is a POST of JSON ``{"type", "timestamp", "data"}`` signed in the Standard Webhooks form:
``webhook-id`` (the same on every retry of one delivery, so the cat can drop duplicates),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``, a space-separated list of
``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, one per live signing secret of the cat
(``cathouse.webhooks`` signs and verifies them). A 2xx answer acknowledges it.

``installation.credentials_invalid`` goes not to the cat but to the installation's owner, at the
webhook they registered, signed the same way with that webhook's own secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_serializer, model_serializer

# What a webhook's type tells the cat, and what the cat should do.
INSTALL: Final = "installation.provisioned"
UNINSTALL: Final = "installation.uninstalled"
SUSPEND: Final = "installation.suspended"
RESUME: Final = "installation.resumed"
PERMISSIONS: Final = "installation.permissions_changed"
# To the owner's own webhook, not to the cat.
CREDENTIALS_INVALID: Final = "installation.credentials_invalid"

WebhookType = Literal[
    "installation.provisioned",
    "installation.uninstalled",
    "installation.suspended",
    "installation.resumed",
    "installation.permissions_changed",
    "installation.credentials_invalid",
]
MEANINGS: dict[str, str] = {
    INSTALL: "An installation of the cat was made (or retried after failing): set it up. The installation "
    "becomes active once the cat answers 2xx, failed when every attempt is refused.",
    UNINSTALL: "The owner (or an admin) uninstalled it: tear it down. It is uninstalled once the cat answers, "
    "or when every attempt is refused.",
    SUSPEND: "The installation is suspended: its calls through the proxy are refused until it resumes.",
    RESUME: "A suspended installation runs again.",
    PERMISSIONS: "The owner's consent changed: granted and revoked list the permissions.",
    CREDENTIALS_INVALID: "Sent to the owner's own webhook, not to the cat: the cat refused the installation's "
    "credentials, and its calls fail until the owner replaces them; reason says why.",
}
SIGNATURE_HEADERS: dict[str, str] = {
    "webhook-id": "The delivery's id (msg_...), the same on every retry: drop a duplicate by it.",
    "webhook-timestamp": "When this attempt was signed, in Unix seconds; refuse one too far from now.",
    "webhook-signature": 'Space-separated "v1,<base64 HMAC-SHA256>" signatures of "<webhook-id>.<webhook-timestamp>.'
    '<body>", one per live signing secret of the cat (two while a rotation overlaps).',
}

# Fields of ``data`` that only some webhooks carry.
_SOMETIMES = frozenset({"name", "permissions", "granted", "revoked", "reason"})


class WebhookData(BaseModel):
    """What the cat may know about the installation: never a secret (those reach the cat only
    inside proxied calls)."""

    model_config = ConfigDict(frozen=True)

    installation_id: UUID = Field(description="The installation.")
    user_id: UUID = Field(description="Its owner.")
    version: str = Field(description="The cat's version the installation runs.")
    settings: dict[str, Any] = Field(description="The installation's settings (never its secrets).")
    name: str | None = Field(default=None, description="The owner's name for it (a first install only).")
    permissions: list[str] | None = Field(default=None, description="The permissions granted (a first install only).")
    granted: list[str] | None = Field(default=None, description="Permissions granted (permissions_changed only).")
    revoked: list[str] | None = Field(default=None, description="Permissions revoked (permissions_changed only).")
    reason: str | None = Field(default=None, description="Why its credentials broke (credentials_invalid only).")

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        return {k: v for k, v in data.items() if not (k in _SOMETIMES and v is None)}


class Webhook(BaseModel):
    """One provisioning webhook's body."""

    model_config = ConfigDict(frozen=True)

    type: WebhookType = Field(description="What happened to the installation.")
    timestamp: datetime = Field(description="When it happened (ISO 8601).")
    data: WebhookData

    @field_serializer("timestamp")
    def _iso(self, value: datetime) -> str:
        return value.isoformat()

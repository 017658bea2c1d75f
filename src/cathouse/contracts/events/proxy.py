"""What the proxy publishes: its verdicts on an installation's credentials, which the installation
service applies to the installation's lifecycle (the proxy never writes that service's tables)."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from cathouse.contracts.events.base import DomainEvent


class CredentialsVerdict(DomainEvent):
    aggregate: ClassVar[str] = "installation"
    aggregate_key: ClassVar[str] = "installation_id"

    installation_id: UUID = Field(description="The installation whose credentials the cat judged.")
    cat_id: UUID = Field(description="The cat.")


class CredentialsRejected(CredentialsVerdict):
    """The cat refused the installation's credentials (it answered 401)."""

    type: ClassVar[str] = "proxy.credentials_rejected"

    upstream_status: int = Field(description="What the cat answered.")


class CredentialsAccepted(CredentialsVerdict):
    """The cat accepted credentials it had refused before."""

    type: ClassVar[str] = "proxy.credentials_accepted"


EVENTS: tuple[type[DomainEvent], ...] = (CredentialsRejected, CredentialsAccepted)

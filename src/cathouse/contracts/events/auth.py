"""What the auth service publishes: accounts created, changed, disabled and deleted."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from cathouse.contracts.events.base import DomainEvent

# An admin, or ``"cli"`` when an operator ran a command.
Actor = UUID | Literal["cli"]
_BY = 'The admin who did it, or "cli" for an operator\'s command.'


class UserEvent(DomainEvent):
    aggregate: ClassVar[str] = "user"
    aggregate_key: ClassVar[str] = "user_id"

    user_id: UUID = Field(description="The account.")


class UserRegistered(UserEvent):
    """An account was created: by sign-up (``display_name``), or as an admin from the command line
    (``roles``, ``by``)."""

    type: ClassVar[str] = "user.registered"
    sometimes: ClassVar[frozenset[str]] = frozenset({"display_name", "roles", "by"})

    display_name: str | None = Field(default=None, description="The name chosen at sign-up.")
    roles: list[str] | None = Field(default=None, description="The roles given by the command line.")
    by: Actor | None = Field(default=None, description=_BY)


class UserUpdated(UserEvent):
    """A user changed their profile."""

    type: ClassVar[str] = "user.updated"

    fields: list[str] = Field(description="The names of the fields that changed, never their values.")


class UserRolesChanged(UserEvent):
    """An admin (or the command line) changed the account's roles."""

    type: ClassVar[str] = "user.roles_changed"

    roles: list[str] = Field(description="Every role the account has now.")
    by: Actor = Field(description=_BY)


class UserDisabled(UserEvent):
    """An admin disabled the account: its sessions ended."""

    type: ClassVar[str] = "user.disabled"

    by: UUID = Field(description="The admin who did it.")


class UserEnabled(UserEvent):
    """An admin enabled the account again."""

    type: ClassVar[str] = "user.enabled"

    by: UUID = Field(description="The admin who did it.")


class UserDeleted(UserEvent):
    """The user deleted their account."""

    type: ClassVar[str] = "user.deleted"


class RefreshTokenReused(UserEvent):
    """A used refresh token came back: every session of that login was ended."""

    type: ClassVar[str] = "auth.refresh_token_reused"

    family_id: UUID = Field(description="The login (refresh-token family) whose sessions were ended.")


EVENTS: tuple[type[DomainEvent], ...] = (
    UserRegistered,
    UserUpdated,
    UserRolesChanged,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    RefreshTokenReused,
)

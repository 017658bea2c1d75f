from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    DEVELOPER = "developer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller of a request."""

    user_id: uuid.UUID
    roles: frozenset[Role]
    token_id: str
    expires_at: int
    # The login (refresh-token family) the token was issued for, when it names one.
    session_id: uuid.UUID | None = None
    # The account's token version when the token was issued (its ``ver``; 0 when it has none).
    token_version: int = 0

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    @property
    def is_developer(self) -> bool:
        return Role.DEVELOPER in self.roles or self.is_admin

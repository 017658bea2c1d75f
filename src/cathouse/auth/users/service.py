from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.auth.errors import AccountInactive, CannotChangeOwnAdmin, UserNotFound, WrongPassword
from cathouse.auth.models import User, UserStatus
from cathouse.auth.repository import RefreshTokenRepository, RevocationRepository, UserRepository
from cathouse.auth.service import AuthContext
from cathouse.contracts.events import auth as events
from cathouse.platform.outbox import record
from cathouse.platform.pagination import decode_time_cursor, encode_time_cursor
from cathouse.platform.security import Principal


class UserService:
    def __init__(self, session: AsyncSession, context: AuthContext) -> None:
        self.session = session
        self.context = context
        self.users = UserRepository(session)
        self.tokens = RefreshTokenRepository(session)
        self.revocations = RevocationRepository(session)

    def _event(self, event: events.UserEvent) -> None:
        record(self.session, event)

    async def me(self, principal: Principal, *, for_update: bool = False) -> User:
        user = await self.users.by_id(principal.user_id, for_update=for_update)
        if user is None or user.status != UserStatus.ACTIVE:
            raise AccountInactive()
        return user

    async def update_profile(self, principal: Principal, changes: dict[str, Any]) -> User:
        user = await self.me(principal, for_update=True)
        for field, value in changes.items():
            setattr(user, field, str(value) if field == "avatar_url" and value is not None else value)
        if changes:
            user.updated_at = datetime.now(UTC)
            self._event(events.UserUpdated(user_id=user.id, fields=sorted(changes)))
        await self.session.flush()
        return user

    async def change_password(
        self, principal: Principal, current: str, new: str, keep_family: uuid.UUID | None
    ) -> None:
        user = await self.me(principal, for_update=True)
        matches, _ = await self.context.passwords.verify(current, user.password_hash)
        if not matches:
            raise WrongPassword()
        user.password_hash = await self.context.passwords.hash(new)
        user.updated_at = datetime.now(UTC)
        await self.tokens.revoke_user(user.id, "password_changed", except_family=keep_family)
        await self.revocations.record(user, end_sessions=True, kept_session=keep_family)
        await self.session.flush()

    async def delete_account(self, principal: Principal, password: str) -> None:
        """Soft delete: the row stays for what refers to it; what identifies the person goes."""
        user = await self.me(principal, for_update=True)
        matches, _ = await self.context.passwords.verify(password, user.password_hash)
        if not matches:
            raise WrongPassword()
        now = datetime.now(UTC)
        user.status = UserStatus.DELETED
        user.deleted_at = user.updated_at = now
        user.email = f"deleted+{user.id}@invalid"
        user.display_name = "Deleted user"
        user.bio = user.avatar_url = user.locale = user.time_zone = None
        user.password_hash = "!"  # noqa: S105 - not a hash, so it matches no password
        await self.tokens.revoke_user(user.id, "account_deleted")
        await self.revocations.record(user, end_sessions=True)
        self._event(events.UserDeleted(user_id=user.id))
        await self.session.flush()

    async def get(self, user_id: uuid.UUID) -> User:
        user = await self.users.by_id(user_id)
        if user is None:
            raise UserNotFound()
        return user

    async def search(
        self, *, query: str | None, role: str | None, status: str | None, cursor: str | None, limit: int
    ) -> tuple[list[User], str | None]:
        after = decode_time_cursor(cursor) if cursor else None
        rows = list(await self.users.search(query=query, role=role, status=status, after=after, limit=limit + 1))
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_time_cursor(rows[-1].created_at, rows[-1].id)
        return rows, next_cursor

    async def set_roles(self, admin: Principal, user_id: uuid.UUID, roles: list[str]) -> User:
        if user_id == admin.user_id and "admin" not in roles:
            raise CannotChangeOwnAdmin()
        user = await self.users.by_id(user_id, for_update=True)
        if user is None or user.status == UserStatus.DELETED:
            raise UserNotFound()
        user.roles = ["user", *sorted(set(roles))]
        user.updated_at = datetime.now(UTC)
        await self.revocations.record(user)
        self._event(events.UserRolesChanged(user_id=user.id, roles=user.roles, by=admin.user_id))
        await self.session.flush()
        return user

    async def set_enabled(self, admin: Principal, user_id: uuid.UUID, enabled: bool) -> User:
        if user_id == admin.user_id and not enabled:
            raise CannotChangeOwnAdmin()
        user = await self.users.by_id(user_id, for_update=True)
        if user is None or user.status == UserStatus.DELETED:
            raise UserNotFound()
        user.status = UserStatus.ACTIVE if enabled else UserStatus.DISABLED
        user.updated_at = datetime.now(UTC)
        if enabled:
            user.failed_logins, user.locked_until = 0, None
        else:
            await self.tokens.revoke_user(user.id, "account_disabled")
        # Disabled, the account's tokens stop; enabled again, those issued before stay void.
        await self.revocations.record(user, end_sessions=not enabled)
        kind = events.UserEnabled if enabled else events.UserDisabled
        self._event(kind(user_id=user.id, by=admin.user_id))
        await self.session.flush()
        return user

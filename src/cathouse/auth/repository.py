"""Every query of the auth schema."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.auth.models import RefreshToken, Revocation, SigningKey, User, UserStatus


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_id(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        statement = select(User).where(User.id == user_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def by_email(self, email: str, *, for_update: bool = False) -> User | None:
        statement = select(User).where(User.email == email)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def email_exists(self, email: str) -> bool:
        return (await self.session.scalar(select(User.id).where(User.email == email))) is not None

    def add(self, user: User) -> None:
        self.session.add(user)

    async def search(
        self,
        *,
        query: str | None,
        role: str | None,
        status: str | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[User]:
        statement = select(User).order_by(User.created_at.desc(), User.id.desc()).limit(limit)
        if query:
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            statement = statement.where(or_(User.email.ilike(pattern), User.display_name.ilike(pattern)))
        if role:
            statement = statement.where(User.roles.contains([role]))
        if status:
            statement = statement.where(User.status == status)
        if after is not None:
            statement = statement.where(tuple_(User.created_at, User.id) < tuple_(*after))
        return (await self.session.scalars(statement)).all()


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, token: RefreshToken) -> None:
        self.session.add(token)

    async def use(self, token_hash: bytes, client: bytes) -> RefreshToken | None:
        """Mark a live token used (by ``client``) and return it; None if it is unknown, used,
        revoked or expired.

        One ``UPDATE … WHERE used_at IS NULL``: of concurrent callers exactly one gets the row.
        """
        result = await self.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > func.now(),
            )
            .values(used_at=func.now(), used_by=client)
            .returning(RefreshToken)
        )
        return result.scalars().one_or_none()

    async def by_hash(self, token_hash: bytes) -> RefreshToken | None:
        """The token as committed now, not as this session saw it earlier."""
        statement = (
            select(RefreshToken).where(RefreshToken.token_hash == token_hash).execution_options(populate_existing=True)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def revoke_family(self, family_id: uuid.UUID, reason: str) -> int:
        return await self._revoke(RefreshToken.family_id == family_id, reason)

    async def revoke_user(self, user_id: uuid.UUID, reason: str, *, except_family: uuid.UUID | None = None) -> int:
        condition: Any = RefreshToken.user_id == user_id
        if except_family is not None:
            condition = and_(condition, RefreshToken.family_id != except_family)
        return await self._revoke(condition, reason)

    async def _revoke(self, condition: Any, reason: str) -> int:
        result = await self.session.execute(
            update(RefreshToken)
            .where(condition, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=func.now(), revoked_reason=reason)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


class RevocationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, user: User, *, end_sessions: bool = False, kept_session: uuid.UUID | None = None) -> None:
        """Say to every process how ``user``'s access tokens stand now: its roles, whether it is
        disabled and, with ``end_sessions``, that every token issued so far (but those of
        ``kept_session``) is void. The caller holds the user's row locked."""
        user.token_version += 1
        valid_from = user.token_version if end_sessions else 0
        row = {
            "user_id": user.id,
            "version": user.token_version,
            "roles": list(user.roles),
            "disabled": user.status != UserStatus.ACTIVE,
            "valid_from": valid_from,
            "kept_session": kept_session if end_sessions else None,
            "changed_at": func.clock_timestamp(),
        }
        statement = insert(Revocation).values(row)
        excluded = statement.excluded
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[Revocation.user_id],
                set_={
                    "version": excluded.version,
                    "roles": excluded.roles,
                    "disabled": excluded.disabled,
                    "valid_from": excluded.valid_from if end_sessions else Revocation.valid_from,
                    "kept_session": excluded.kept_session if end_sessions else Revocation.kept_session,
                    "changed_at": excluded.changed_at,
                },
            )
        )


class SigningKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, key: SigningKey) -> None:
        self.session.add(key)

    async def current_kid(self) -> str | None:
        return await self.session.scalar(select(SigningKey.kid).where(SigningKey.superseded_at.is_(None)))

    async def live(self, now: datetime) -> Sequence[SigningKey]:
        """Every key that still verifies, oldest first."""
        statement = (
            select(SigningKey)
            .where(or_(SigningKey.retires_at.is_(None), SigningKey.retires_at > now))
            .order_by(SigningKey.created_at)
        )
        return (await self.session.scalars(statement)).all()

    async def supersede_current(self, now: datetime, *, retires_at: datetime) -> None:
        await self.session.execute(
            update(SigningKey)
            .where(SigningKey.superseded_at.is_(None))
            .values(superseded_at=now, retires_at=retires_at)
        )

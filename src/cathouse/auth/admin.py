"""Operator actions run from the command line, outside any request."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.auth.models import User
from cathouse.auth.passwords import Passwords
from cathouse.auth.repository import RevocationRepository, UserRepository
from cathouse.auth.service import normalise_email
from cathouse.contracts.events import auth as events
from cathouse.platform.outbox import record


async def create_admin(
    session: AsyncSession, passwords: Passwords, *, email: str, password: str, display_name: str
) -> tuple[User, bool]:
    """Create an admin account, or make an existing account an admin. Returns (user, created)."""
    users = UserRepository(session)
    user = await users.by_email(normalise_email(email), for_update=True)
    created = user is None
    if user is None:
        user = User(
            email=normalise_email(email),
            password_hash=await passwords.hash(password),
            display_name=display_name,
            roles=["user", "admin"],
        )
        users.add(user)
        await session.flush()
    elif "admin" not in user.roles:
        user.roles = [*user.roles, "admin"]
        user.updated_at = datetime.now(UTC)
        await RevocationRepository(session).record(user)
    if created:
        record(session, events.UserRegistered(user_id=user.id, roles=list(user.roles), by="cli"))
    else:
        record(session, events.UserRolesChanged(user_id=user.id, roles=list(user.roles), by="cli"))
    await session.flush()
    return user, created

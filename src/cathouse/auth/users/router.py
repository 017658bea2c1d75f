from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from cathouse.auth.dependencies import Users
from cathouse.auth.errors import AccountInactive, CannotChangeOwnAdmin, UserNotFound, WrongPassword
from cathouse.auth.schemas import AccountDeletion, PasswordChange, ProfileUpdate, RolesIn, UserOut
from cathouse.platform.openapi import problems
from cathouse.platform.pagination import MAX_LIMIT, InvalidCursor, Page
from cathouse.platform.schemas import SingleLine
from cathouse.platform.security import AdminUser, CurrentUser

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("/me", response_model=UserOut, summary="Your profile", responses=problems(AccountInactive))
async def read_me(user: CurrentUser, users: Users) -> UserOut:
    return UserOut.model_validate(await users.me(user))


@router.patch("/me", response_model=UserOut, summary="Change your profile", responses=problems(AccountInactive))
async def update_me(changes: ProfileUpdate, user: CurrentUser, users: Users) -> UserOut:
    updated = await users.update_profile(user, changes.model_dump(exclude_unset=True))
    return UserOut.model_validate(updated)


@router.post(
    "/me/password",
    status_code=204,
    summary="Change your password; other sessions end",
    responses=problems(WrongPassword, AccountInactive),
)
async def change_password(body: PasswordChange, user: CurrentUser, users: Users) -> Response:
    await users.change_password(user, body.current_password, body.new_password, keep_family=user.session_id)
    return Response(status_code=204)


@router.delete(
    "/me", status_code=204, summary="Delete your account", responses=problems(WrongPassword, AccountInactive)
)
async def delete_me(body: AccountDeletion, user: CurrentUser, users: Users) -> Response:
    await users.delete_account(user, body.password)
    return Response(status_code=204)


@router.get(
    "", response_model=Page[UserOut], summary="Find users (admins)", name="list", responses=problems(InvalidCursor)
)
async def list_users(
    admin: AdminUser,
    users: Users,
    q: Annotated[
        str | None,
        Query(max_length=100, description="Part of an email or display name."),
        SingleLine,
    ] = None,
    role: Literal["user", "developer", "admin"] | None = None,
    status: Literal["active", "disabled", "deleted"] | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> Page[UserOut]:
    rows, next_cursor = await users.search(query=q, role=role, status=status, cursor=cursor, limit=limit)
    return Page[UserOut](items=[UserOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{user_id}", response_model=UserOut, summary="One user (admins)", name="read", responses=problems(UserNotFound)
)
async def get_user(user_id: uuid.UUID, admin: AdminUser, users: Users) -> UserOut:
    return UserOut.model_validate(await users.get(user_id))


@router.put(
    "/{user_id}/roles",
    response_model=UserOut,
    summary="Set a user's roles (admins)",
    responses=problems(UserNotFound, CannotChangeOwnAdmin),
)
async def set_roles(user_id: uuid.UUID, body: RolesIn, admin: AdminUser, users: Users) -> UserOut:
    return UserOut.model_validate(await users.set_roles(admin, user_id, list(body.roles)))


@router.post(
    "/{user_id}/disable",
    response_model=UserOut,
    summary="Disable an account (admins)",
    responses=problems(UserNotFound, CannotChangeOwnAdmin),
)
async def disable(user_id: uuid.UUID, admin: AdminUser, users: Users) -> UserOut:
    return UserOut.model_validate(await users.set_enabled(admin, user_id, enabled=False))


@router.post(
    "/{user_id}/enable",
    response_model=UserOut,
    summary="Enable an account (admins)",
    responses=problems(UserNotFound, CannotChangeOwnAdmin),
)
async def enable(user_id: uuid.UUID, admin: AdminUser, users: Users) -> UserOut:
    return UserOut.model_validate(await users.set_enabled(admin, user_id, enabled=True))

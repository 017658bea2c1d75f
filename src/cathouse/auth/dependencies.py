"""Typed dependencies of the auth service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.auth.service import AccountService, AuthContext
from cathouse.auth.users.service import UserService
from cathouse.platform.db import session_dependency
from cathouse.platform.ratelimit import RateLimiter

Session = Annotated[AsyncSession, Depends(session_dependency("auth"), scope="function")]


def _context(request: Request) -> AuthContext:
    context: AuthContext = request.app.state.auth
    return context


def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.auth_limiter
    return limiter


Context = Annotated[AuthContext, Depends(_context)]
Limiter = Annotated[RateLimiter, Depends(_limiter)]


def _accounts(session: Session, context: Context) -> AccountService:
    return AccountService(session, context)


def _users(session: Session, context: Context) -> UserService:
    return UserService(session, context)


Accounts = Annotated[AccountService, Depends(_accounts)]
Users = Annotated[UserService, Depends(_users)]


def client_address(request: Request) -> str:
    # uvicorn's --proxy-headers (trusted proxies only) already put the real client here.
    return request.client.host if request.client else "unknown"

"""Liveness and readiness, answered by every service.

``/health`` says the process runs; ``/health/db`` that it reaches its database;
``/health/ready`` that it can serve: its database, and the keys that verify tokens (fetched
from auth's JWKS by every process that does not run auth itself).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from loguru import logger
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import cathouse
from cathouse.platform.errors import ServiceUnavailable
from cathouse.platform.openapi import problems
from cathouse.platform.security import JwksKeySource, KeysUnavailable, TokenVerifier

router = APIRouter(prefix="/api/v1/health", tags=["health"])
TAG = {"name": "health", "description": "Is this process alive, and can it serve? For load balancers."}


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    service: str
    version: str


class DatabaseHealth(BaseModel):
    status: Literal["ok"] = "ok"
    databases: dict[str, Literal["ok"]]


class Readiness(DatabaseHealth):
    jwks_url: str | None = Field(
        description="Where this process fetches the keys that verify tokens; null when it holds them itself (auth)."
    )


def _kind(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionRefusedError | FileNotFoundError):
        return "connection refused"
    if isinstance(error, OSError):
        return "network error"
    return "database error"


@router.get("", response_model=Health, summary="Liveness", name="liveness")
async def health(request: Request) -> Health:
    return Health(service=request.app.state.service_name, version=cathouse.__version__)


async def _ping(engine: AsyncEngine, limit: float) -> None:
    async with asyncio.timeout(limit):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))


_UNAVAILABLE = problems((ServiceUnavailable, "A database (or the keys that verify tokens) cannot be reached."))


async def _databases(request: Request) -> dict[str, Literal["ok"]]:
    engines: dict[str, AsyncEngine] = request.app.state.engines
    timeout: float = request.app.state.settings.db_connect_timeout
    # Services in one process share its engine: one connection of its pool answers for them all.
    distinct = list({id(engine): engine for engine in engines.values()}.values())
    pinged = await asyncio.gather(*(_ping(engine, timeout) for engine in distinct), return_exceptions=True)
    outcome = {id(engine): result for engine, result in zip(distinct, pinged, strict=True)}
    results = [outcome[id(engine)] for engine in engines.values()]
    failures = {name: r for name, r in zip(engines, results, strict=True) if isinstance(r, BaseException)}
    if failures:
        name, error = next(iter(failures.items()))
        # The endpoint is public: say what kind of failure, keep hosts and users for the log.
        logger.warning("database unreachable", component=name, error=f"{type(error).__name__}: {error}")
        raise ServiceUnavailable(f"The {name} database is unreachable ({_kind(error)}).")
    return dict.fromkeys(engines, "ok")


@router.get(
    "/db",
    response_model=DatabaseHealth,
    summary="Readiness of the database: can this service reach it?",
    responses=_UNAVAILABLE,
    name="database",
)
async def database_health(request: Request) -> DatabaseHealth:
    return DatabaseHealth(databases=await _databases(request))


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: can this service serve? Its database, and the keys that verify tokens",
    responses=_UNAVAILABLE,
)
async def readiness(request: Request) -> Readiness:
    databases = await _databases(request)
    verifier: TokenVerifier = request.app.state.verifier
    source = verifier.source
    if not isinstance(source, JwksKeySource):
        return Readiness(databases=databases, jwks_url=None)
    try:
        await source.check()
    except KeysUnavailable as exc:
        # Named in full: this is an address inside the deployment that an operator must fix
        # (CATHOUSE_TOKENS__JWKS_URL), and health routes are not routed through the gateway.
        raise ServiceUnavailable(
            f"Cannot fetch the keys that verify tokens from {exc.url}: {exc.reason}. "
            "Every signed-in request is refused until they can be fetched (CATHOUSE_TOKENS__JWKS_URL).",
            jwks_url=exc.url,
        ) from None
    return Readiness(databases=databases, jwks_url=source.url)

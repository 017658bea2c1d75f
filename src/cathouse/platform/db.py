"""Engines and sessions. Engines are built in a lifespan, never at import."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from sqlalchemy import URL, Enum, MetaData, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from cathouse.platform.errors import CatHouseError
from cathouse.platform.settings import Settings

# One naming convention for every schema, so constraint names are stable in migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def string_enum(values: type[enum.StrEnum], length: int) -> Enum:
    """A column of ``values`` stored as their values in a VARCHAR(``length``), as the migrations
    made it: no native PostgreSQL enum and no CHECK constraint from here (the migrations write
    their own), so mapping a status column to an enum changes nothing in the database."""
    return Enum(
        values,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def async_url(url: str) -> URL:
    """Turn any PostgreSQL URL into an asyncpg one.

    libpq's ``sslmode`` becomes asyncpg's ``ssl`` so a managed server's
    ``?sslmode=require`` URL works as it is pasted.
    """
    parsed = make_url(url)
    query = dict(parsed.query)
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    return parsed.set(drivername="postgresql+asyncpg", query=query)


def create_engine(
    settings: Settings,
    *,
    application_name: str,
    pool_size: int,
    max_overflow: int = 0,
    url: str | None = None,
    owner: bool = False,
    read_only: bool = False,
) -> AsyncEngine:
    """An engine on the services' URL, or with ``owner`` the owner's (migrations, privileged jobs).

    ``read_only`` connections refuse every write (``default_transaction_read_only``).
    """
    configured = settings.owner_database_url() if owner else settings.database_url
    raw = url or (configured.get_secret_value() if configured else None)
    if raw is None:
        raise RuntimeError("no database URL: set CATHOUSE_DATABASE_URL or start the embedded one")
    server_settings = {"application_name": application_name}
    if read_only:
        server_settings["default_transaction_read_only"] = "on"
    return create_async_engine(
        async_url(raw),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=settings.pool_pre_ping,
        pool_recycle=settings.pool_recycle,
        pool_timeout=settings.pool_timeout,
        connect_args={
            "timeout": settings.db_connect_timeout,
            "server_settings": server_settings,
        },
    )


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def session_dependency(service: str) -> Callable[[Request], AsyncIterator[AsyncSession]]:
    """A request-scoped session on ``service``'s engine that commits when the request succeeds.

    The request owns the transaction: services and repositories only ``flush()``. Declare it
    with ``Depends(..., scope="function")`` so the commit happens before the response is sent.
    """

    async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
        makers: dict[str, async_sessionmaker[AsyncSession]] = request.app.state.sessionmakers
        async with makers[service]() as session:
            try:
                yield session
            except CatHouseError as exc:
                # Some refusals must still be recorded (a failed login, a reused token).
                await (session.commit() if exc.commit else session.rollback())
                raise
            except BaseException:
                await session.rollback()
                raise
            else:
                await session.commit()

    get_session.__name__ = f"get_{service}_session"
    return get_session

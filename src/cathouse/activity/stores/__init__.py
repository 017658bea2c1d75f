"""The read model's two homes behind one interface: Redis when it is configured, else PostgreSQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.activity.readmodel import ReadModel
from cathouse.activity.stores.postgres import PostgresReadModel, notify_entries
from cathouse.activity.stores.redis import RedisReadModel
from cathouse.platform.settings import Settings


def open_read_model(settings: Settings, engine: AsyncEngine) -> ReadModel:
    """The configured store. ``engine`` reaches the activity schema (and carries NOTIFYs for Redis)."""
    if settings.redis_url is None:
        return PostgresReadModel(engine)
    section = settings.activity

    async def announce(newest: int) -> None:
        await notify_entries(engine, newest)

    return RedisReadModel.from_url(
        settings.redis_url.get_secret_value(),
        prefix=section.redis_prefix,
        global_cap=section.global_feed_cap,
        user_cap=section.user_feed_cap,
        cat_cap=section.cat_feed_cap,
        dedupe_ttl=section.dedupe_ttl_days * 86400,
        announce=announce,
    )


__all__ = ["PostgresReadModel", "ReadModel", "RedisReadModel", "open_read_model"]

"""The catalog's background work: keep install counts and verified reviews in step with installations.

Each event makes the catalog recount through the installation service's reader (from the registry), so
applying an event twice, or out of order, leaves the same figures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from loguru import logger
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.catalog.models import Cat, Review
from cathouse.contracts.events import UnknownEvent, parse
from cathouse.contracts.events.installation import InstallationCreated, InstallationEvent, InstallationStatusChanged
from cathouse.contracts.reads import InstallationReader
from cathouse.platform.db import sessionmaker
from cathouse.platform.outbox.relay import Event
from cathouse.platform.registry import Registry
from cathouse.platform.settings import Settings
from cathouse.platform.workers import Worker

INSTALLATION_EVENTS = (InstallationCreated, InstallationStatusChanged)


@asynccontextmanager
async def worker(settings: Settings, engine: AsyncEngine, registry: Registry) -> AsyncIterator[Worker]:
    sessions = sessionmaker(engine)
    installations = registry.get(InstallationReader)

    async def recount(event: Event) -> None:
        try:
            parsed = parse(event.event_type, event.schema_version, event.payload)
        except UnknownEvent as exc:  # skipped, never retried (see cathouse.contracts.events)
            logger.warning("event skipped", event_id=event.id, event_type=event.event_type, reason=exc.reason)
            return
        if not isinstance(parsed, InstallationEvent):
            return  # subscribed to installation events only
        cat_id, user_id = parsed.cat_id, parsed.user_id
        async with sessions() as session, session.begin():
            counts = await installations.install_counts(session, cat_id)
            await session.execute(
                update(Cat)
                .where(Cat.id == cat_id)
                .values(install_count=counts.total, active_install_count=counts.active)
            )
            if await installations.has_installed(session, user_id, cat_id):
                await session.execute(
                    update(Review)
                    .where(Review.cat_id == cat_id, Review.user_id == user_id, Review.verified.is_(False))
                    .values(verified=True)
                )

    yield Worker(handlers={e.type: [recount] for e in INSTALLATION_EVENTS})

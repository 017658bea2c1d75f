"""The activity service's background work, beside the relay: the consumer and its lag probe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.activity.consumer import BATCH_SIZE, Consumer, LagProbe
from cathouse.activity.stores import open_read_model
from cathouse.platform.registry import Registry
from cathouse.platform.settings import Settings
from cathouse.platform.workers import Worker


@asynccontextmanager
async def worker(settings: Settings, engine: AsyncEngine, registry: Registry) -> AsyncIterator[Worker]:
    model = open_read_model(settings, engine)
    try:
        consumer = Consumer(model)
        probe = LagProbe(engine, settings.activity.lag_interval)
        try:
            # Many aggregates at once: the consumer applies the events in flight in one transaction.
            yield Worker(handlers={"*": [consumer.on_event]}, loops=[probe.run], concurrency=BATCH_SIZE)
        finally:
            await consumer.close()
    finally:
        await model.close()

"""Rebuild the read model from the event history: empty it, then apply every event of the outbox
in ``seq`` order through the same projection the live consumer uses.

While it runs the live consumer is refused (the relay retries those events later, and they are
found applied already), so the result is what the live consumer would have built. Entry ids keep
growing across a rebuild: a stream client resuming from an old id gets the rebuilt entries again
rather than missing any.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.activity.consumer import count
from cathouse.activity.readmodel import ReadModel
from cathouse.platform.db import sessionmaker
from cathouse.platform.outbox import OutboxEvent
from cathouse.platform.outbox.relay import Event

Progress = Callable[[int, int], None]


@dataclass
class RebuildReport:
    events: int = 0
    applied: int = 0
    entries: int = 0
    # Why events were not applied: unknown_type, unknown_version, malformed, duplicate.
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def _event(row: OutboxEvent) -> Event:
    return Event(
        id=str(row.id),
        seq=row.seq,
        aggregate_type=row.aggregate_type,
        aggregate_id=row.aggregate_id,
        event_type=row.event_type,
        schema_version=row.schema_version,
        payload=row.payload,
        occurred_at=row.occurred_at,
        request_id=row.request_id,
        attempts=row.attempts,
    )


async def rebuild(
    model: ReadModel, engine: AsyncEngine, *, batch_size: int = 500, progress: Progress | None = None
) -> RebuildReport:
    """Rebuild ``model`` from the outbox ``engine`` reaches; ``progress(done, total)`` after each batch."""
    started = time.perf_counter()
    report = RebuildReport()
    await model.start_rebuild()
    try:
        sessions = sessionmaker(engine)
        async with sessions() as session:
            total = int(await session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)
        if progress is not None:
            progress(0, total)
        after = 0
        while True:
            async with sessions() as session:
                statement = select(OutboxEvent).where(OutboxEvent.seq > after).order_by(OutboxEvent.seq)
                rows = (await session.scalars(statement.limit(batch_size))).all()
            if not rows:
                break
            outcomes = await model.apply([_event(r) for r in rows], rebuild=True)
            count(outcomes, live=False)
            for outcome in outcomes:
                if outcome.status == "applied":
                    report.applied += 1
                    report.entries += outcome.entry is not None
                else:
                    report.skipped[outcome.reason or outcome.status] += 1
            report.events += len(rows)
            after = rows[-1].seq
            if progress is not None:
                progress(report.events, max(total, report.events))
    finally:
        await model.finish_rebuild()
    report.seconds = time.perf_counter() - started
    return report

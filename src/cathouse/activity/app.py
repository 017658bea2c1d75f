"""The activity service: feeds and statistics read from domain events (the CQRS read side)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from cathouse.activity import asyncapi
from cathouse.activity.hub import Hub
from cathouse.activity.models import Base
from cathouse.activity.router import router
from cathouse.activity.stores import open_read_model
from cathouse.activity.views import Readers
from cathouse.activity.worker import worker
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = app.state.engines["activity"]
    model = open_read_model(settings, engine)
    hub = Hub(
        model,
        engine,
        app.state.sessionmakers["activity"],
        Readers.of(app.state.registry),
        listener=app.state.listener,  # the process's one LISTEN connection, the relay's too
        poll_interval=settings.activity.stream_poll_interval,
    )
    app.state.activity_model = model
    app.state.activity_hub = hub
    try:
        yield
    finally:
        await hub.close()  # ends every open stream
        await model.close()


SERVICE = Service(
    name="activity",
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    title="Activity",
    description=(
        "Feeds and statistics built from domain events. `GET /api/v1/activity/stream` (not listed "
        "below: it never ends) sends new entries you may see as Server-Sent Events; each event's id "
        "is the entry's, and a `Last-Event-ID` header resumes after it without gaps. "
        "`GET /api/v1/events/asyncapi.json` describes every event and webhook (AsyncAPI 3.0)."
    ),
    routers=(router, asyncapi.router),
    tags=(
        {"name": "activity", "description": "Feeds and statistics built from what happens on the platform."},
        {"name": "events", "description": "The domain events, described as an AsyncAPI document."},
    ),
    lifespan=lifespan,
    worker=worker,
)

"""Typed dependencies of the activity service: its session, read model and hub."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cathouse.activity.hub import Hub
from cathouse.activity.readmodel import ReadModel
from cathouse.activity.views import Readers
from cathouse.platform.db import session_dependency

Session = Annotated[AsyncSession, Depends(session_dependency("activity"), scope="function")]


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessionmakers["activity"]
    return sessions


# For a short read done before the read model is asked: the request's session would keep its
# connection to the end, and the read model (on the same pool) would need a second one.
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]


def _model(request: Request) -> ReadModel:
    model: ReadModel = request.app.state.activity_model
    return model


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.activity_hub
    return hub


def _readers(request: Request) -> Readers:
    return Readers.of(request.app.state.registry)


Model = Annotated[ReadModel, Depends(_model)]
# Read-only: names of cats and people, and the proxy's call counts, as their services registered them.
ReadersDep = Annotated[Readers, Depends(_readers)]
HubDep = Annotated[Hub, Depends(_hub)]

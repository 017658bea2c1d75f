"""Typed dependencies of the activity service: its session, read model and hub."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.activity.hub import Hub
from cathouse.activity.readmodel import ReadModel
from cathouse.platform.db import session_dependency

# Read-only: names of cats and people, and the proxy's call counts, through their query modules.
Session = Annotated[AsyncSession, Depends(session_dependency("activity"), scope="function")]


def _model(request: Request) -> ReadModel:
    model: ReadModel = request.app.state.activity_model
    return model


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.activity_hub
    return hub


Model = Annotated[ReadModel, Depends(_model)]
HubDep = Annotated[Hub, Depends(_hub)]

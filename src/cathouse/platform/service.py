"""What a service tells the kernel about itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from sqlalchemy import MetaData
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from cathouse.platform.registry import Registry
    from cathouse.platform.workers import WorkerFactory


@dataclass(frozen=True)
class AppendOnly:
    """A table the services' database role may read and add rows to, but not change or empty:
    it neither deletes nor truncates, and updates only ``updatable`` columns (a head row it moves
    forward, say). See :mod:`cathouse.platform.roles`."""

    table: str
    updatable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Component:
    """Anything that owns a schema and migrates it: every service, and the kernel's outbox."""

    name: str
    metadata: MetaData
    migrations: Path
    append_only: tuple[AppendOnly, ...] = ()

    @property
    def schema(self) -> str:
        assert self.metadata.schema is not None, f"{self.name}'s metadata names no schema"
        return self.metadata.schema


@dataclass(frozen=True)
class Service(Component):
    """A service: its schema, its routers and, when it needs one, a lifespan of its own."""

    title: str = ""
    description: str = ""
    routers: Sequence[APIRouter] = field(default_factory=tuple)
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None
    # Event handlers and loops that run beside the relay (see platform/workers.py).
    worker: WorkerFactory | None = None
    # Puts what other services may read of this one's data in the registry: called for every
    # service in every process (see ``cathouse.services``), not only for those it serves.
    register: Callable[[Registry], None] | None = None
    # ASGI middleware put in front of everything else (the app's own middleware included),
    # each built as ``factory(app, owner)`` with ``owner`` the FastAPI app: for a hot path
    # that must not pay for routing and dependency injection.
    front: Sequence[Callable[[ASGIApp, FastAPI], ASGIApp]] = field(default_factory=tuple)
    # The OpenAPI tags of its routes, in the order the docs list them: ``{"name", "description"}``.
    tags: Sequence[Mapping[str, str]] = field(default_factory=tuple)
    # Security schemes its operations name besides the bearer access token (``HTTPBearer``).
    security_schemes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

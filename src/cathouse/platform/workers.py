"""Background work a service contributes: handlers of relayed outbox events, and loops.

They run wherever the relay runs (beside the services in ``cathouse up``, in ``cathouse
relay`` when split), so what they do survives a restart. Without a broker the relay calls
the handlers itself and the outbox is their queue (``cathouse.platform.outbox.fanout``). With
``CATHOUSE_BROKER_URL`` the relay publishes to the broker and each worker's handlers form a
consumer group there, named after the worker: every process running the workers is a member,
the group's work is shared among them, and each group gets every event. Either way one group's
failing handler holds back no other group.

The relay and every worker of a process share one engine (one pool, ``max_overflow=0``) and one
LISTEN connection: the process's connections to PostgreSQL are its pool size plus one, whatever
the workers do. A factory is handed that engine and builds its sessions on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.broker import broker_from_settings
from cathouse.platform.db import create_engine
from cathouse.platform.listen import Listener
from cathouse.platform.outbox.fanout import Fanout, Group
from cathouse.platform.outbox.relay import Handler, InProcessPublisher, Publisher, Relay
from cathouse.platform.registry import Registry
from cathouse.platform.settings import Settings


@dataclass
class Worker:
    # Handlers by event type; ``"*"`` receives every event.
    handlers: Mapping[str, Sequence[Handler]] = field(default_factory=dict)
    loops: Sequence[Callable[[], Awaitable[None]]] = ()
    # The consumer group of its handlers on a broker, by default its service's name
    # (``cathouse.catalog.worker`` → ``catalog``). Keep it stable: the broker remembers how far
    # a group has read by this name, and a new name starts from the oldest event kept.
    name: str | None = None
    # Without a broker, how many aggregates' events the handlers may take at once (each
    # aggregate's still one at a time, in order). On a broker the partitions decide.
    concurrency: int = 1


# Called with the settings, the process's engine, which the worker must not dispose of, and
# the registry in which it finds what it reads of other services.
WorkerFactory = Callable[[Settings, AsyncEngine, Registry], AbstractAsyncContextManager[Worker]]


def group_name(worker: Worker, factory: WorkerFactory) -> str:
    if worker.name:
        return worker.name
    module = getattr(factory, "__module__", "") or ""
    parts = module.split(".")
    if len(parts) > 2 and parts[0] == "cathouse":
        return parts[1]
    return str(getattr(factory, "__qualname__", "worker"))


async def _forever(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    # A loop that dies is logged and started again after a pause: one bug must not stop the rest.
    while True:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.opt(exception=exc).error("worker loop failed; restarting", loop=name)
            await asyncio.sleep(1.0)


@asynccontextmanager
async def running(
    settings: Settings,
    factories: Sequence[WorkerFactory],
    *,
    engine: AsyncEngine | None = None,
    listener: Listener | None = None,
    registry: Registry,
) -> AsyncIterator[Relay]:
    """The relay, feeding every worker's handlers (in process, or through the broker), and every
    worker's loops, all on ``engine`` and ``listener`` (the process's), or on an engine of
    ``events.pool_size`` connections named ``cathouse-relay`` and a LISTEN connection of their own.
    The workers find what they read of other services in ``registry``."""
    broker = broker_from_settings(settings)
    async with AsyncExitStack() as stack:
        if engine is None:
            engine = create_engine(settings, application_name="cathouse-relay", pool_size=settings.events.pool_size)
            stack.push_async_callback(engine.dispose)
        if listener is None:
            listener = await stack.enter_async_context(
                Listener(engine.url, application_name="cathouse-relay-listen").running()
            )
        groups: dict[str, Worker] = {}
        loops: list[Callable[[], Awaitable[None]]] = []
        for factory in factories:
            worker = await stack.enter_async_context(factory(settings, engine, registry))
            if worker.handlers:
                name = base = group_name(worker, factory)
                suffix = 1
                while name in groups:
                    suffix += 1
                    name = f"{base}-{suffix}"
                groups[name] = worker
            loops.extend(worker.loops)
        # Each group goes at its own pace: one group's failing handler holds back no other.
        publisher: Publisher = Fanout(
            {name: Group(w.handlers, w.concurrency) for name, w in groups.items()},
            max_backoff=settings.events.max_backoff,
        )
        if broker is not None:
            for name, worker in groups.items():
                broker.subscribe(name, InProcessPublisher(worker.handlers).publish)
            await broker.start()
            # Stopped before the workers close: a handler still running may need their resources.
            stack.push_async_callback(broker.stop)
            publisher = broker
            logger.info("events go through the broker", broker=broker.kind, groups=sorted(groups))
        tasks = [asyncio.create_task(_forever(getattr(loop, "__qualname__", "loop"), loop)) for loop in loops]
        try:
            async with Relay.from_settings(settings, publisher, engine=engine, listener=listener).running() as relay:
                yield relay
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

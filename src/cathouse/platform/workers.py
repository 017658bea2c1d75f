"""Background work a service contributes: handlers of relayed outbox events, and loops.

They run wherever the relay runs (beside the services in ``cathouse up``, in ``cathouse
relay`` when split), so what they do survives a restart: the outbox is their queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from loguru import logger

from cathouse.platform.outbox.relay import Handler, InProcessPublisher, Relay
from cathouse.platform.settings import Settings


@dataclass
class Worker:
    handlers: Mapping[str, Sequence[Handler]] = field(default_factory=dict)
    loops: Sequence[Callable[[], Awaitable[None]]] = ()


WorkerFactory = Callable[[Settings], AbstractAsyncContextManager[Worker]]


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
async def running(settings: Settings, factories: Sequence[WorkerFactory]) -> AsyncIterator[Relay]:
    """The relay, feeding every worker's handlers, and every worker's loops."""
    async with AsyncExitStack() as stack:
        publisher = InProcessPublisher()
        loops: list[Callable[[], Awaitable[None]]] = []
        for factory in factories:
            worker = await stack.enter_async_context(factory(settings))
            for event_type, handlers in worker.handlers.items():
                for handler in handlers:
                    publisher.register(event_type, handler)
            loops.extend(worker.loops)
        tasks = [asyncio.create_task(_forever(getattr(loop, "__qualname__", "loop"), loop)) for loop in loops]
        try:
            async with Relay.from_settings(settings, publisher).running() as relay:
                yield relay
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

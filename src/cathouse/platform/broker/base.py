"""The broker interface every adapter implements, and what adapters share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from loguru import logger

from cathouse.platform.metrics import CONSUMER_FAILURES, CONSUMER_HANDLED
from cathouse.platform.outbox.relay import Event, Handler, PublisherUnavailable


class BrokerUnavailable(PublisherUnavailable):
    """The broker cannot be reached (or did not confirm in time): nothing was made durable."""


class Broker(Protocol):
    """A durable, keyed event log with consumer groups.

    ``publish`` returns once the broker holds the event durably. ``subscribe`` (before ``start``)
    hands every event to ``handler`` once per ``group`` at least once: a message is acknowledged
    only after the handler returns, and a failing handler gets the message again (after a
    backoff) before any later event of the same aggregate is handled. Members of one group
    (processes, or several subscribe calls) share the work; different groups each get everything.
    """

    kind: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, event: Event) -> None: ...

    def subscribe(self, group: str, handler: Handler) -> None: ...


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """How consumers retry and hold messages (from ``EventSettings``)."""

    backoff: float = 0.5
    max_backoff: float = 30.0
    # Without a sign of life for this long a message (or a partition) goes to another member.
    lease: float = 30.0

    def retry_in(self, failures: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2 ** min(max(failures - 1, 0), 20)))


async def handle(group: str, handler: Handler, event: Event) -> bool:
    """Run a handler; a failure is logged and counted, and the caller delivers the event again."""
    try:
        await handler(event)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        CONSUMER_FAILURES.labels(group).inc()
        logger.opt(exception=exc).warning(
            "event handler failed; it will get the event again",
            group=group,
            event_id=event.id,
            event_type=event.event_type,
            attempts=event.attempts,
        )
        return False
    CONSUMER_HANDLED.labels(group).inc()
    return True


class Connector:
    """Connects in the background until it succeeds: a broker down at boot delays nothing else.

    Publishing before the connection is up raises :class:`BrokerUnavailable` (the relay keeps
    the events); consumers wait for :attr:`ready`.
    """

    def __init__(self, kind: str, connect: Callable[[], Awaitable[None]]) -> None:
        self.kind = kind
        self._connect = connect
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("broker unreachable; connecting in the background", broker=self.kind, error=str(exc))
            self._task = asyncio.create_task(self._retry(), name=f"{self.kind}-connect")
            return
        self.ready.set()

    async def _retry(self) -> None:
        failures = 0
        while True:
            failures += 1
            await asyncio.sleep(min(10.0, 0.25 * 2 ** min(failures, 6)))
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("broker still unreachable", broker=self.kind, error=str(exc))
                continue
            logger.info("broker connected", broker=self.kind)
            self.ready.set()
            return

    def check(self) -> None:
        if not self.ready.is_set():
            raise BrokerUnavailable(f"not connected to {self.kind}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.ready.clear()


class Loops:
    """A consumer's tasks; stopping lets a handler that is running finish and acknowledge.

    A loop runs each delivery inside :meth:`busy` and returns when :attr:`stopping` is set;
    ``stop`` cancels the idle loops at once and gives the busy ones ``grace`` seconds.
    """

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[Any]] = set()
        self.stopping = False

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.stopping = False
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(coro, name=name))

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self._busy.add(task)
        try:
            yield
        finally:
            self._busy.discard(task)

    async def stop(self, grace: float = 10.0) -> None:
        self.stopping = True
        busy = [t for t in self._tasks if t in self._busy]
        for task in self._tasks:
            if task not in self._busy:
                task.cancel()
        if busy:
            await asyncio.wait(busy, timeout=grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

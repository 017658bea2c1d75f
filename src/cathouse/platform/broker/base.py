"""The broker interface every adapter implements, and what adapters share.

:class:`BaseBroker` is the plumbing of every adapter: connecting in the background, publishing
with its failures sorted and counted, subscribing before start, consumer loops that reconnect
after a backoff, and stopping in order. An adapter adds only what its broker needs.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from loguru import logger

from cathouse.platform.metrics import (
    BROKER_PUBLISH_FAILURES,
    BROKER_PUBLISHED,
    CONSUMER_FAILURES,
    CONSUMER_HANDLED,
)
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


def reconnect_delay(failures: int, cap: float = 10.0) -> float:
    """How long to wait before connecting again after ``failures`` failures in a row."""
    return float(min(cap, 0.25 * 2 ** min(failures, 6)))


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
        if not await self._attempt("WARNING", "broker unreachable; connecting in the background"):
            self._task = asyncio.create_task(self._retry(), name=f"{self.kind}-connect")

    async def _retry(self) -> None:
        failures = 0
        while True:
            failures += 1
            await asyncio.sleep(reconnect_delay(failures))
            if await self._attempt("DEBUG", "broker still unreachable"):
                logger.info("broker connected", broker=self.kind)
                return

    async def _attempt(self, level: str, failure: str) -> bool:
        try:
            await self._connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.log(level, failure, broker=self.kind, error=str(exc))
            return False
        self.ready.set()
        return True

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
        if self._tasks:
            # Bounded: a client library that swallows the cancellation must not hold up the stop.
            _, stuck = await asyncio.wait(self._tasks, timeout=grace)
            for task in stuck:
                logger.warning("a consumer task did not stop when cancelled; left behind", task=task.get_name())
        for task in self._tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: its failure was logged where it happened
        self._tasks.clear()


@dataclass
class Subscription:
    group: str
    handler: Handler


S = TypeVar("S", bound=Subscription)
T = TypeVar("T")


class BaseBroker(ABC, Generic[S]):
    """What every adapter does alike; a subclass connects, sends and consumes its own way.

    ``event_errors`` are publish failures that are the event's fault (too large, say): they
    propagate as they are. ``unavailable_errors`` mean the broker is away and become
    :class:`BrokerUnavailable`, so the relay keeps the event and tries again.
    """

    kind: str
    event_errors: tuple[type[Exception], ...] = ()
    unavailable_errors: tuple[type[Exception], ...] = (OSError, TimeoutError)

    def __init__(
        self, *, prefix: str, partitions: int, publish_timeout: float, options: ConsumerOptions | None
    ) -> None:
        self.prefix = prefix
        self.partitions = partitions
        self.publish_timeout = publish_timeout
        self.options = options or ConsumerOptions()
        self._connector = Connector(self.kind, self._connect)
        self._subscriptions: list[S] = []
        self._loops = Loops()

    # -- what an adapter provides --------------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None:
        """Connect and make sure the broker's layout exists; raise (leaving nothing open) if not."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close what ``_connect`` opened, if it did."""

    @abstractmethod
    async def _send(self, event: Event) -> None:
        """Publish one event on the connection, returning once the broker holds it."""

    @abstractmethod
    def _subscription(self, group: str, handler: Handler) -> S: ...

    @abstractmethod
    def _start_consuming(self, subscription: S) -> None:
        """Spawn the subscription's consumer tasks on ``self._loops``."""

    async def _leave(self) -> None:
        """Give up what the consumers held, once they have stopped and before disconnecting."""

    # -- the Broker interface --------------------------------------------------------------------

    async def start(self) -> None:
        await self._connector.start()
        for subscription in self._subscriptions:
            self._start_consuming(subscription)

    async def stop(self) -> None:
        await self._loops.stop()
        await self._leave()
        await self._connector.stop()
        await self._disconnect()

    async def publish(self, event: Event) -> None:
        self._connector.check()
        try:
            await self._send(event)
        except self.event_errors:
            BROKER_PUBLISH_FAILURES.labels(self.kind).inc()
            raise
        except self.unavailable_errors as exc:
            BROKER_PUBLISH_FAILURES.labels(self.kind).inc()
            raise BrokerUnavailable(f"{self.kind}: {type(exc).__name__}: {exc}") from exc
        BROKER_PUBLISHED.labels(self.kind).inc()

    def subscribe(self, group: str, handler: Handler) -> None:
        if self._loops:
            raise RuntimeError("subscribe before start")
        self._subscriptions.append(self._subscription(group, handler))

    # -- for consumers ---------------------------------------------------------------------------

    async def _keep_consuming(
        self,
        group: str,
        session: Callable[[], AbstractAsyncContextManager[T]],
        consume: Callable[[T], Awaitable[None]],
    ) -> None:
        """Open a consumer session once connected and consume until ``consume`` returns (stopping).

        A session that fails, opening or later, is closed and opened again after a backoff: a
        broker that goes away and comes back costs the consumer nothing but the wait.
        """
        failures = 0
        while True:
            await self._connector.ready.wait()
            try:
                async with session() as opened:
                    failures = 0
                    await consume(opened)
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                # Once per outage is enough to see it; the retries after are noise.
                level = "WARNING" if failures == 1 else "DEBUG"
                logger.opt(exception=exc).log(level, f"{self.kind} consumer interrupted; resuming", group=group)
                await asyncio.sleep(reconnect_delay(failures))

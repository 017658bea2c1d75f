"""LISTEN on PostgreSQL channels, on one connection of its own per process, reconnecting when it drops.

A notification only says "look now": whoever listens also looks on a timer, so one lost with a
dropped connection delays, and after every (re)connection it looks at once for what committed
while nobody listened. The connection is asyncpg's own, outside the pool: it stays checked out
for good, and a pooled one would be recycled under it.

One process holds one such connection, whatever listens in it (the relay, the activity hub):
each registers its channel with the process's :class:`Listener`, which opens the connection
when the first channel is registered and not before. A channel may also ride along
(``connect=False``, the revocation feed): told while a connection is held for others, it opens
none, and its owner polls meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
from loguru import logger
from sqlalchemy import URL

# How often the connection is checked: a half-open TCP connection raises no error.
CHECK_INTERVAL = 15.0


class Listener:
    """Calls each channel's callbacks for every notification on it and after every (re)connection."""

    def __init__(self, url: URL, *, application_name: str, check_interval: float = CHECK_INTERVAL) -> None:
        query = dict(url.query)
        self._ssl = query.pop("ssl", None)
        # host (a socket directory, as the embedded server's URL has it) and port say where the
        # server is: without them asyncpg would go to localhost:5432, another server or none.
        where = {key: value for key, value in query.items() if key in ("host", "port")}
        self._dsn = url.set(drivername="postgresql", query=where).render_as_string(hide_password=False)
        self.application_name = application_name
        self.check_interval = check_interval
        self._callbacks: dict[str, list[Callable[[], None]]] = defaultdict(list)
        # Channels registered by someone who needs the connection (not only uses it when held).
        self._wanted: set[str] = set()
        self._listening: dict[str, asyncio.Event] = {}
        # Registrations the current connection has not taken up yet.
        self._pending: list[tuple[str, Callable[[], None]]] = []
        self._stir = asyncio.Event()

    def listen(self, channel: str, on_notify: Callable[[], None], *, connect: bool = True) -> asyncio.Event:
        """Call ``on_notify`` for every notification on ``channel``, once LISTENing on it, and after
        every reconnection. Returns :meth:`listening_on` ``channel``.

        With ``connect=False`` the registration rides on a connection opened for others: it alone
        opens none, and while there is none ``on_notify`` is not called (its owner polls)."""
        self._callbacks[channel].append(on_notify)
        if connect:
            self._wanted.add(channel)
        self._pending.append((channel, on_notify))
        self._stir.set()
        return self.listening_on(channel)

    def listening_on(self, channel: str) -> asyncio.Event:
        """Set while the connection is up and LISTENs on ``channel`` (tests wait for it)."""
        return self._listening.setdefault(channel, asyncio.Event())

    @property
    def channels(self) -> list[str]:
        return list(self._callbacks)

    def _notified(self, _conn: Any, _pid: int, channel: str, _payload: str) -> None:
        for callback in self._callbacks.get(channel, ()):
            callback()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Listener]:
        task = asyncio.create_task(self.run(), name=f"listen-{self.application_name}")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        failures = 0
        while True:
            while not self._wanted:  # nothing needs a connection: none
                self._stir.clear()
                await self._stir.wait()
            try:
                await self._listen()  # returns only by raising
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if any(e.is_set() for e in self._listening.values()):
                    failures = 0  # it was up: a new outage
                # One warning per outage; the retries at debug, so a long one does not flood the log.
                level = "WARNING" if failures == 0 else "DEBUG"
                logger.opt(exception=exc).log(
                    level, "lost the LISTEN connection; polling until it is back", channels=self.channels
                )
            for event in self._listening.values():
                event.clear()
            failures += 1
            await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    async def _listen(self) -> None:
        lost = asyncio.Event()

        def on_lost(_conn: Any) -> None:
            lost.set()
            self._stir.set()

        conn: Any = await asyncpg.connect(
            self._dsn, ssl=self._ssl, timeout=10, server_settings={"application_name": self.application_name}
        )
        try:
            conn.add_termination_listener(on_lost)
            # A new connection takes up every registration again.
            self._pending = [(channel, cb) for channel, callbacks in self._callbacks.items() for cb in callbacks]
            listened: set[str] = set()
            while not lost.is_set():
                self._stir.clear()
                while self._pending:
                    channel, callback = self._pending.pop(0)
                    if channel not in listened:
                        await conn.add_listener(channel, self._notified)
                        listened.add(channel)
                        self.listening_on(channel).set()
                    callback()  # whatever committed while nobody listened
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stir.wait(), self.check_interval)
                if not self._stir.is_set():
                    await conn.execute("SELECT 1", timeout=5)
            raise ConnectionError("the LISTEN connection was closed")
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

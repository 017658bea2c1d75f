"""LISTEN on a PostgreSQL channel, on a connection of its own, reconnecting when it drops.

A notification only says "look now": whoever listens also looks on a timer, so one lost with a
dropped connection delays, and after every (re)connection it looks at once for what committed
while nobody listened. The connection is asyncpg's own, outside the pool: it stays checked out
for good, and a pooled one would be recycled under it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
from loguru import logger
from sqlalchemy import URL

# How often the connection is checked: a half-open TCP connection raises no error.
CHECK_INTERVAL = 15.0


class Listener:
    """Calls ``on_notify`` for every notification on ``channel`` and after every (re)connection."""

    def __init__(
        self,
        url: URL,
        channel: str,
        on_notify: Callable[[], None],
        *,
        application_name: str,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        query = dict(url.query)
        self._ssl = query.pop("ssl", None)
        # host (a socket directory, as the embedded server's URL has it) and port say where the
        # server is: without them asyncpg would go to localhost:5432, another server or none.
        where = {key: value for key, value in query.items() if key in ("host", "port")}
        self._dsn = url.set(drivername="postgresql", query=where).render_as_string(hide_password=False)
        self.channel = channel
        self.on_notify = on_notify
        self.application_name = application_name
        self.check_interval = check_interval
        # Set while the connection is up (tests wait for it).
        self.listening = asyncio.Event()

    def _notified(self, *_: Any) -> None:
        self.on_notify()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()  # returns only by raising
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.listening.is_set():
                    failures = 0  # it was up: a new outage
                # One warning per outage; the retries at debug, so a long one does not flood the log.
                level = "WARNING" if failures == 0 else "DEBUG"
                logger.opt(exception=exc).log(
                    level, "lost the LISTEN connection; polling until it is back", channel=self.channel
                )
            self.listening.clear()
            failures += 1
            await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    async def _listen(self) -> None:
        lost = asyncio.Event()
        conn: Any = await asyncpg.connect(
            self._dsn, ssl=self._ssl, timeout=10, server_settings={"application_name": self.application_name}
        )
        try:
            await conn.add_listener(self.channel, self._notified)
            conn.add_termination_listener(lambda _conn: lost.set())
            self.listening.set()
            self.on_notify()  # whatever committed while nobody listened
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.check_interval)
                if not lost.is_set():
                    await conn.execute("SELECT 1", timeout=5)
            raise ConnectionError("the LISTEN connection was closed")
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

"""A small RESP2 client: just what the rate limiter needs, at a fraction of a library's CPU.

Why not a library: the client CPU per call of the rate limiter's script is a quarter to a tenth
of redis-py's with hiredis, one caller or 32 at once (``bench/resp.py`` runs both against the
same Redis; pure Python parsing suffices: the replies are four integers). It speaks just what the
limiter needs: one pipelined connection, AUTH, SELECT, EVALSHA/EVAL, a deadline per
command, TLS for ``rediss://``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import cast
from urllib.parse import SplitResult, parse_qs, unquote


def command(*args: bytes, more: int = 0) -> bytes:
    """A command in RESP; with ``more``, only its start, to which ``more`` arguments are appended."""
    parts = [b"*%d\r\n" % (len(args) + more)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class ReplyError(Exception):
    """An error reply from Redis (``-ERR ...``, ``-NOSCRIPT ...``)."""


def _parse(buf: bytearray, pos: int) -> tuple[object, int]:
    """One RESP2 reply at ``pos``: (value, end), or end -1 while it is incomplete."""
    eol = buf.find(b"\r\n", pos)
    if eol < 0:
        return None, -1
    kind, line, end = buf[pos], buf[pos + 1 : eol], eol + 2
    if kind == 0x3A:  # :integer
        return int(line), end
    if kind == 0x2A:  # *array
        items: list[object] = []
        for _ in range(int(line)):
            if end < len(buf) and buf[end] == 0x3A:  # an integer, as the limiter's replies hold: read here
                eol = buf.find(b"\r\n", end)
                if eol < 0:
                    return None, -1
                items.append(int(buf[end + 1 : eol]))
                end = eol + 2
                continue
            item, end = _parse(buf, end)
            if end < 0:
                return None, -1
            items.append(item)
        return items, end
    if kind == 0x24:  # $bulk
        size = int(line)
        if size < 0:
            return None, end
        if len(buf) < end + size + 2:
            return None, -1
        return bytes(buf[end : end + size]), end + size + 2
    if kind == 0x2B:  # +simple
        return bytes(line), end
    if kind == 0x2D:  # -error
        return ReplyError(line.decode(errors="replace")), end
    raise ConnectionError(f"unexpected RESP reply type {chr(kind)!r}")


class Connection(asyncio.Protocol):
    """One pipelined Redis connection: replies come back in order, so a queue of futures is all
    the bookkeeping. A command unanswered after ``timeout`` aborts the connection, failing every
    command in flight: one timer at a time, for the oldest command. The commands of one turn of
    the event loop (the concurrent calls' checks) leave in one write, so one system call on each
    side serves them all."""

    def __init__(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._buffer = bytearray()
        self._pending: deque[tuple[float, asyncio.Future[object]]] = deque()
        self._outgoing: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._failure: Exception = ConnectionError("connection to Redis lost")
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport, though they are one.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        pos = 0
        try:
            while self._pending:
                reply, end = _parse(buf, pos)
                if end < 0:
                    break
                pos = end
                _, future = self._pending.popleft()
                if future.done():  # its caller gave up; the reply still had to be consumed
                    continue
                if isinstance(reply, ReplyError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (ValueError, ConnectionError) as exc:
            self._abort(ConnectionError(f"unreadable reply from Redis: {exc}"))
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        failure = self._failure if exc is None else exc
        while self._pending:
            _, future = self._pending.popleft()
            if not future.done():
                future.set_exception(failure)

    def call(self, payload: bytes) -> asyncio.Future[object]:
        if self.closed or self._transport is None:
            raise ConnectionError("connection to Redis closed")
        future: asyncio.Future[object] = self._loop.create_future()
        deadline = self._loop.time() + self._timeout
        self._pending.append((deadline, future))
        if not self._outgoing:
            self._loop.call_soon(self._send)
        self._outgoing.append(payload)
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._check_deadline)
        return future

    def _send(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        # Closed meanwhile: connection_lost fails the commands' futures.
        if not self.closed and self._transport is not None:
            self._transport.write(b"".join(outgoing))

    def close(self) -> None:
        # Closed at once, so no command is written to a transport on its way out.
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.abort()

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._pending:
            return
        deadline = self._pending[0][0]
        if self._loop.time() >= deadline:
            self._abort(TimeoutError(f"Redis did not answer within {self._timeout}s"))
        else:
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    def _abort(self, failure: Exception) -> None:
        self._failure = failure
        self.close()


async def connect(parts: SplitResult, timeout: float) -> Connection:  # noqa: ASYNC109 - also each command's deadline
    """A connection to the Redis of ``parts`` (``redis://``, ``rediss://`` or ``unix://``), signed
    in and on its database, within ``timeout`` seconds for the connection itself."""
    loop = asyncio.get_running_loop()
    conn: Connection
    async with asyncio.timeout(timeout):
        if parts.scheme == "unix":
            _, conn = await loop.create_unix_connection(lambda: Connection(timeout), parts.path)
        else:
            tls = ssl.create_default_context() if parts.scheme == "rediss" else None
            _, conn = await loop.create_connection(
                lambda: Connection(timeout), parts.hostname or "127.0.0.1", parts.port or 6379, ssl=tls
            )
    handshake = []
    if parts.password is not None:
        user = [unquote(parts.username).encode()] if parts.username else []
        handshake.append(conn.call(command(b"AUTH", *user, unquote(parts.password).encode())))
    db = parse_qs(parts.query).get("db", ["0"])[0] if parts.scheme == "unix" else parts.path.strip("/")
    if db and db != "0":
        handshake.append(conn.call(command(b"SELECT", db.encode())))
    try:
        # Every reply is collected, so a failed AUTH leaves no unretrieved exception behind.
        for outcome in await asyncio.gather(*handshake, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
    except BaseException:  # a cancelled caller too: no half-opened connection is left
        conn.close()
        raise
    return conn

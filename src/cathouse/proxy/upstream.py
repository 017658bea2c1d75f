"""The proxy's client for cats' APIs: HTTP/1.1 with keep-alive, on ``asyncio.Protocol`` and httptools.

Every user call goes through here, so its cost is the proxy's. General-purpose clients (aiohttp,
httpx with its connection pool) do far more per request than forwarding needs; a protocol
feeding an httptools parser does only that, at about a quarter of aiohttp's CPU per exchange
(``bench/upstream_client.py``; ``bench/proxy.py --bare`` measures the whole proxy against nginx).
Hence:

- One ``_Connection`` per socket; parser callbacks fill the running exchange's state. The caller
  waits on one future at a time, bounded by a ``loop.call_at`` timer (``read_timeout``, capped by
  the deadline) that aborts the socket when it fires: no task per request, nothing left dangling.
- A reply whose body came with its head (the usual small JSON) is detached at once and its
  connection pooled before the caller reads it. Larger bodies stream, reading paused above
  ``HIGH_WATER`` buffered bytes until the consumer catches up.
- Idle connections are kept per ``Target``, newest first: the least likely to have been closed
  by the server. Only a complete exchange both sides keep alive returns a connection to the pool;
  anything unfinished is aborted. A closed one is seen (``connection_lost``, ``is_closing``) and
  dropped; a safe request (GET, HEAD, OPTIONS, TRACE, no streamed body) that meets a server
  closing the idle connection just as it was sent is sent once more on a fresh one.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

ErrorKind = Literal["connect", "timeout", "protocol", "too_large", "closed"]

# Reading pauses above HIGH_WATER buffered body bytes and resumes below LOW_WATER, so a slow
# consumer holds at most about one socket read beyond HIGH_WATER in memory.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
# Below this a body is joined to the head: one write, one segment for small requests.
_JOIN_BELOW = 64 * 1024
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(r"[\x21-\x7e]+")  # visible ASCII only: no space, control or raw non-ASCII
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_NAMES = re.compile(_TOKEN + rb"(?:\n" + _TOKEN + rb")*")  # names joined by LF
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: an address already checked by the SSRF guard (never resolved again here)."""

    address: str  # an IP literal, v4 or v6
    port: int
    tls: bool
    host: str  # the cat's host name: for SNI and the certificate check (the caller sets the Host header)


class UpstreamError(Exception):
    """The exchange failed. ``sent`` is False only when no byte of the request can have left."""

    def __init__(self, kind: ErrorKind, *, sent: bool, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind: ErrorKind = kind
        self.sent = sent


class Response:
    """A response head, and its body to be read once (``body()`` or ``read()``) or discarded (``close()``).

    A caller that neither reads the body to its end nor closes the response keeps its connection
    out of the pool until the server drops it.
    """

    __slots__ = ("_conn", "_pending", "headers", "status")

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], conn: _Connection | None, pending: deque[bytes]
    ) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn  # None once every byte of the body is in _pending
        self._pending = pending

    @property
    def complete(self) -> bool:
        """Every byte of the body is here already (and the connection is back in the pool)."""
        return self._conn is None

    def body(self) -> AsyncIterator[bytes]:
        return self

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            if self._pending:
                return self._pending.popleft()
            raise StopAsyncIteration
        try:
            chunk = await conn.next_chunk()
        except BaseException:
            self._conn = None
            conn.abort()
            raise
        if conn.done and not conn.chunks:
            self._conn = None
            conn.pool._release(conn)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def read(self) -> bytes:
        if self._conn is None:
            data = b"".join(self._pending)
            self._pending.clear()
            return data
        return b"".join([chunk async for chunk in self])

    def close(self) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.abort()
        self._pending.clear()


class _Connection(asyncio.Protocol):
    """One socket to one target, and the state of the exchange running on it."""

    __slots__ = (
        "active", "body_sent", "buffered", "chunked", "chunks", "closed", "deadline", "declared", "done",
        "error", "got_bytes", "head_only", "headers", "headers_done", "interim", "keep_alive", "limit",
        "loop", "lost", "parser", "pool", "reading_paused", "received", "status", "target", "timer",
        "transport", "wait_until", "waiter", "write_paused",
    )  # fmt: skip

    def __init__(self, pool: UpstreamPool, target: Target, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.target = target
        self.loop = loop
        self.parser = HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.wait_until: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.lost: asyncio.Future[None] | None = None
        self.error: UpstreamError | None = None
        self.closed = self.reading_paused = self.write_paused = False
        self.start(head_only=False, limit=None, deadline=None)

    def start(self, *, head_only: bool, limit: int | None, deadline: float | None) -> None:
        self.active = True  # an exchange is running: bytes from the server are expected
        self.head_only = head_only
        self.limit = limit
        self.deadline = deadline
        self.status = self.buffered = self.received = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()  # the previous Response may still own the old one
        self.declared: int | None = None
        self.chunked = self.interim = self.headers_done = self.done = False
        self.keep_alive = self.body_sent = self.got_bytes = False

    async def exchange(self, head: bytes, body: bytes | AsyncIterator[bytes] | None, length: int | None) -> None:
        """Send the request and wait for the final response's head."""
        transport = self.transport
        assert transport is not None
        try:
            if body is None or isinstance(body, bytes):
                if body is not None and len(body) >= _JOIN_BELOW:
                    transport.write(head)
                    transport.write(body)
                else:
                    transport.write(head if body is None else head + body)
                self.body_sent = True
                if self.write_paused:
                    await self._drain()  # read_timeout counts from when a large body has left
            else:
                scope = asyncio.timeout_at(self.deadline)
                try:
                    async with scope:
                        await self._stream(transport, head, body, length)
                except TimeoutError:
                    if not scope.expired():
                        raise
                    self._fail(UpstreamError("timeout", sent=True, detail="the deadline passed while sending"))
            while not self.headers_done and self.error is None:
                await self.wait()
            if self.error is not None:
                raise self.error
        except BaseException:
            self.abort()
            raise

    async def _stream(
        self, transport: asyncio.Transport, head: bytes, body: AsyncIterator[bytes], length: int | None
    ) -> None:
        transport.write(head)
        total = 0
        async for chunk in body:
            if self.headers_done or self.error is not None or transport.is_closing():
                return  # the upstream has answered or gone: the rest of the body is moot
            if not chunk:
                continue  # an empty chunk would end a chunked body
            total += len(chunk)
            if length is None:
                transport.writelines((b"%X\r\n" % len(chunk), chunk, b"\r\n"))
            elif total > length:
                raise ValueError(f"the body is longer than content_length={length}")
            else:
                transport.write(chunk)
            if self.write_paused:
                await self._drain()
        if length is None:
            transport.write(b"0\r\n\r\n")
        elif total != length:
            raise ValueError(f"the body has {total} bytes, not content_length={length}")
        self.body_sent = True
        await self._drain()

    async def _drain(self) -> None:
        # An upstream that answers early (413, say) may have stopped reading: don't wait for it.
        while self.write_paused and self.error is None and not self.closed and not self.headers_done:
            await self.wait()

    async def wait(self) -> None:
        """Until the next event on this connection, for at most read_timeout (and the deadline).

        The connection keeps one timer rather than setting and cancelling one per wait: it is
        moved only to come sooner, and when it goes off early for the wait now running it is
        set again for that wait's own time. A busy connection's timer goes off about once per
        read_timeout, whatever the number of calls."""
        loop = self.loop
        waiter = self.waiter = loop.create_future()
        when = loop.time() + self.pool._read_timeout
        if self.deadline is not None and self.deadline < when:
            when = self.deadline
        self.wait_until = when
        timer = self.timer
        if timer is None or timer.when() > when:
            if timer is not None:
                timer.cancel()
            self.timer = loop.call_at(when, self._check_wait)
        try:
            await waiter
        finally:
            self.waiter = None
            self.wait_until = None

    def _check_wait(self) -> None:
        self.timer = None
        until = self.wait_until
        if until is None or self.waiter is None:
            return  # nothing waits now: the next wait sets the timer again
        if self.loop.time() >= until:
            self._timed_out()
        else:
            self.timer = self.loop.call_at(until, self._check_wait)

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.reading_paused and self.buffered <= LOW_WATER and self.transport is not None:
                    self.reading_paused = False
                    if not self.closed:
                        self.transport.resume_reading()
                return chunk
            if self.error is not None:
                raise self.error
            if self.done:
                return None
            await self.wait()

    def abort(self) -> None:
        """Drop the connection: whatever it was doing is left unfinished."""
        if self.error is None and self.active:
            self.error = UpstreamError("closed", sent=True, detail="the exchange was abandoned")
        self.keep_alive = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        self.chunks.clear()
        self.buffered = 0
        self.abort()
        self._wake()

    def _timed_out(self) -> None:
        if self.waiter is not None and self.waiter.done():
            return  # what it waited for came in the same loop iteration
        if self.deadline is not None and self.loop.time() >= self.deadline:
            detail = "the deadline passed"
        else:
            detail = f"nothing from the upstream for {self.pool._read_timeout} s"
        self._fail(UpstreamError("timeout", sent=True, detail=detail))

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._conns.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.active and not self.done and self.error is None:
            if exc is None and self.headers_done and self.declared is None and not self.chunked:
                self.done = True  # a body delimited by the close has ended
            else:
                self.error = UpstreamError("closed", sent=True, detail="the upstream closed the connection early")
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)
        self._wake()

    def data_received(self, data: bytes) -> None:
        if not self.active:
            self.abort()  # bytes nobody asked for: the connection is out of step
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade) as exc:
            if self.done:
                self.keep_alive = False  # trailing bytes after a complete response
            elif self.error is None:
                self._fail(UpstreamError("protocol", sent=True, detail=f"malformed response: {exc}"))
        self._wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    # httptools callbacks; an exception raised in one stops the parser

    def on_message_begin(self) -> None:
        if self.done:
            self.keep_alive = False
            raise ValueError("a second response to one request")

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self.declared = int(value)  # llhttp has already checked the digits
        elif name == b"transfer-encoding":
            self.chunked = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status == 101:
            self._fail(UpstreamError("protocol", sent=True, detail="101 Switching Protocols was not asked for"))
            raise ValueError("101")
        if status < 200:  # 100 Continue, 103 Early Hints: the final response follows
            self.interim = True
            self.headers, self.declared, self.chunked = [], None, False
            return
        self.status = status
        self.headers_done = True
        if self.head_only:
            # httptools cannot be told that a response to HEAD has no body: end it here, and
            # give the connection a fresh parser before it is reused.
            self.done = True
            self.keep_alive = self.parser.should_keep_alive()
        elif self.limit is not None and self.declared is not None and self.declared > self.limit:
            self._fail(UpstreamError("too_large", sent=True, detail=f"{self.declared} bytes announced"))
            raise ValueError("too large")

    def on_body(self, body: bytes) -> None:
        if self.done:
            self.keep_alive = False  # a body after a HEAD response's head
            return
        self.received += len(body)
        if self.limit is not None and self.received > self.limit:
            self._fail(UpstreamError("too_large", sent=True, detail=f"over {self.limit} bytes"))
            raise ValueError("too large")
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
        elif not self.done:
            self.done = True
            self.keep_alive = self.parser.should_keep_alive()


def _serialize(
    method: str,
    path: str,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes | AsyncIterator[bytes] | None,
    content_length: int | None,
) -> bytes:
    if _METHOD.fullmatch(method) is None:
        raise ValueError(f"invalid method {method!r}")
    if _TARGET.fullmatch(path) is None:
        raise ValueError(f"unsafe request target {path!r}")
    if body is None:
        if content_length:
            raise ValueError("content_length without a body")
        framing = b"\r\n" if content_length is None else b"Content-Length: 0\r\n\r\n"
    elif isinstance(body, bytes):
        if content_length is not None and content_length != len(body):
            raise ValueError(f"the body has {len(body)} bytes, not content_length={content_length}")
        framing = b"Content-Length: %d\r\n\r\n" % len(body)
    elif content_length is None:
        framing = b"Transfer-Encoding: chunked\r\n\r\n"
    else:
        framing = b"Content-Length: %d\r\n\r\n" % content_length
    line = f"{method} {path} HTTP/1.1\r\n".encode()
    if not headers:
        return line + framing
    # Checked as whole blocks rather than header by header: a few C-level scans instead of
    # several regex calls per header, the largest part of this function's cost otherwise.
    fields = b"\r\n".join(map(b": ".join, headers))
    separators = len(headers) - 1
    if fields.count(b"\r") != separators or fields.count(b"\n") != separators or b"\0" in fields:
        raise ValueError("unsafe header: CR, LF or NUL in a header name or value")
    names = b"\n".join([name for name, _ in headers])
    if _NAMES.fullmatch(names) is None:
        raise ValueError(f"unsafe header name among {names.split()}")
    if not _FRAMING.isdisjoint(names.lower().split(b"\n")):
        raise ValueError("Content-Length and Transfer-Encoding are set by the client from the body it is given")
    return b"".join((line, fields, b"\r\n", framing))


class UpstreamPool:
    """Keep-alive connections to cats' APIs, shared by every request of the process."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_idle_per_target: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle_per_target
        self._ssl = ssl_context  # the default is built on first use: loading the CA store takes ms
        self._idle: dict[Target, list[_Connection]] = {}
        self._conns: set[_Connection] = set()
        self._closed = False

    async def request(
        self,
        target: Target,
        method: str,
        path: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes | AsyncIterator[bytes] | None = None,
        *,
        content_length: int | None = None,
        max_response_bytes: int | None = None,
        deadline: float | None = None,
    ) -> Response:
        """Send one request and return the response head; ``deadline`` is an absolute ``loop.time()``."""
        head = _serialize(method, path, headers, body, content_length)
        if self._closed:
            raise UpstreamError("closed", sent=False, detail="the pool is closed")
        if deadline is not None and asyncio.get_running_loop().time() >= deadline:
            raise UpstreamError("timeout", sent=False, detail="the deadline had passed")
        head_only = method == "HEAD"
        conn, idle = None, self._idle.get(target)
        while idle and conn is None:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                conn = None
        if conn is not None:
            conn.start(head_only=head_only, limit=max_response_bytes, deadline=deadline)
            try:
                await conn.exchange(head, body, content_length)
                return self._response(conn)
            except UpstreamError as exc:
                retry = exc.kind == "closed" and not conn.got_bytes and method in _SAFE_METHODS
                if not retry or isinstance(body, AsyncIterator):
                    raise
        fresh = await self._connect(target, deadline, sent=conn is not None)
        fresh.start(head_only=head_only, limit=max_response_bytes, deadline=deadline)
        await fresh.exchange(head, body, content_length)
        return self._response(fresh)

    async def close(self) -> None:
        """Close every connection; requests still running fail with kind "closed"."""
        self._closed = True
        self._idle.clear()
        loop = asyncio.get_running_loop()
        waiting = []
        for conn in list(self._conns):
            conn.lost = loop.create_future()
            waiting.append(conn.lost)
            conn.abort()
        if waiting:
            await asyncio.wait(waiting, timeout=1.0)

    async def _connect(self, target: Target, deadline: float | None, *, sent: bool) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if target.tls:
            context = self._ssl = self._ssl or ssl.create_default_context()
        conn = _Connection(self, target, loop)
        when = loop.time() + self._connect_timeout
        if deadline is not None and deadline < when:
            when = deadline
        try:
            async with asyncio.timeout_at(when):
                await loop.create_connection(
                    lambda: conn,
                    target.address,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                    flags=socket.AI_NUMERICHOST,  # an IP literal or nothing: no name resolution here
                )
        except TimeoutError as exc:
            conn.abort()
            raise UpstreamError("timeout", sent=sent, detail=f"connecting to {target.host} timed out") from exc
        except OSError as exc:
            raise UpstreamError("connect", sent=sent, detail=f"{target.host}: {exc}") from exc
        self._conns.add(conn)
        return conn

    def _response(self, conn: _Connection) -> Response:
        if not conn.done:
            return Response(conn.status, conn.headers, conn, deque())
        response = Response(conn.status, conn.headers, None, conn.chunks)
        self._release(conn)
        return response

    def _release(self, conn: _Connection) -> None:
        conn.active = False
        if conn.keep_alive and conn.body_sent and conn.error is None and not conn.closed and not self._closed:
            idle = self._idle.setdefault(conn.target, [])
            if len(idle) < self._max_idle:
                if conn.head_only:
                    conn.parser = HttpResponseParser(conn)
                if conn.reading_paused and conn.transport is not None:
                    conn.reading_paused = False
                    conn.transport.resume_reading()
                idle.append(conn)
                return
        if conn.transport is not None and not conn.closed:
            conn.transport.close()

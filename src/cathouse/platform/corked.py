"""uvicorn's httptools protocol, with the writes of one turn of the event loop sent together.

uvicorn writes a response's head as soon as the app sends ``http.response.start`` and its body
when the app sends it: two system calls, and over loopback or a fast network two packets, for
the usual small answer. The proxy's answers are mostly that, so one write saves a system call
per call on each side. Writes wait at most until the event loop has run what is ready now.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CorkedTransport:
    """A transport that gathers what is written in one turn of the loop and writes it once.

    Everything but ``write``, ``writelines``, ``close`` and ``abort`` goes to the real transport,
    whose flow control still drives the protocol.
    """

    __slots__ = ("_chunks", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._chunks: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._chunks:
            self._loop.call_soon(self.flush)
        self._chunks.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        if self._chunks:
            chunks, self._chunks = self._chunks, []
            if not self._transport.is_closing():
                self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def close(self) -> None:
        self.flush()  # what was written before close is sent, as with any transport
        self._transport.close()

    def abort(self) -> None:
        self._chunks.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CorkedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        corked = _CorkedTransport(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        super().connection_made(corked)  # type: ignore[arg-type]

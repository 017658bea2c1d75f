"""The corked HTTP protocol: one write per turn of the loop, answers unchanged."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from cathouse.platform.corked import CorkedHttpToolsProtocol, _CorkedTransport
from tests.support import free_port


class _Recording:
    """A transport that only records what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_what_one_turn_writes_leaves_in_one_write_in_order() -> None:
    real = _Recording()
    corked = _CorkedTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.writelines([b"hello", b"", b" world"])
    assert real.writes == []
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nhello world"]
    assert corked.get_write_buffer_size() == 0  # everything else is the real transport's


async def test_close_sends_what_was_written_first_and_abort_drops_it() -> None:
    loop = asyncio.get_running_loop()
    real = _Recording()
    corked = _CorkedTransport(real, loop)  # type: ignore[arg-type]
    corked.write(b"last words")
    corked.close()
    assert real.writes == [b"last words"]
    assert real.closed

    dropped = _Recording()
    aborted = _CorkedTransport(dropped, loop)  # type: ignore[arg-type]
    aborted.write(b"never sent")
    aborted.abort()
    await asyncio.sleep(0)
    assert dropped.writes == []
    assert dropped.closed


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def corked_server() -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=CorkedHttpToolsProtocol, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.mark.parametrize("connection", ["keep-alive", "close"])
async def test_answers_arrive_whole_on_kept_and_closed_connections(connection: str) -> None:
    async with corked_server() as base, httpx.AsyncClient(base_url=base) as http:
        answers: list[Any] = []
        for _ in range(3):
            response = await http.get("/", headers={"connection": connection})
            answers.append((response.status_code, response.json()))
        streamed = await http.get("/stream", headers={"connection": connection})
    assert answers == [(200, {"ok": True})] * 3
    assert streamed.status_code == 200
    assert streamed.text == "one two three"

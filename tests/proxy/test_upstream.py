"""The upstream client against real servers: uvicorn for ordinary traffic, raw asyncio servers for edge cases."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from cathouse.proxy.upstream import Response, Target, UpstreamError, UpstreamPool
from tests.support import Certificate, free_port, self_signed

HOST = [(b"host", b"cat.test")]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# A cat's API, as raw ASGI so that the test controls framing and sees the client's connection.


async def cat_api(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    status, headers, parts = 200, [(b"content-type", b"application/json")], [b""]
    if path == "/echo":
        received = {
            "method": scope["method"],
            "port": scope["client"][1],
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "text": body.decode(errors="replace")[:100],
        }
        parts = [json.dumps(received).encode()]
    elif path == "/bytes":  # n bytes, with a Content-Length
        parts = [b"x" * int(query["n"])]
    elif path == "/stream":  # chunked: no Content-Length
        headers = []
        parts = [bytes([65 + i % 26]) * int(query["size"]) for i in range(int(query["chunks"]))]
    elif path == "/redirect":
        status, headers = 302, [(b"location", b"/echo")]
    elif path == "/empty":
        status, headers = 204, []
    if status != 204 and path != "/stream":
        headers.append((b"content-length", str(sum(map(len, parts))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for i, part in enumerate(parts):
        await send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})


@pytest.fixture(scope="module")
async def cat() -> AsyncIterator[Target]:
    port = free_port()
    config = uvicorn.Config(cat_api, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    try:
        yield Target(address="127.0.0.1", port=port, tls=False, host="cat.test")
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool(connect_timeout=2.0, read_timeout=2.0, max_idle_per_target=10)
    yield pool
    await pool.close()


async def echo(response: Response) -> dict[str, Any]:
    """What the cat received, as it reports it."""
    assert response.status == 200
    received: dict[str, Any] = json.loads(await response.read())
    return received


async def fetch(pool: UpstreamPool, target: Target, path: str, *, max_response_bytes: int | None = None) -> bytes:
    """A GET's whole body; fails as request() or read() would."""
    response = await pool.request(target, "GET", path, HOST, max_response_bytes=max_response_bytes)
    return await response.read()


async def connection_port(pool: UpstreamPool, cat: Target) -> int:
    """The client port the cat sees: which connection the next request uses."""
    port: int = (await echo(await pool.request(cat, "GET", "/echo", HOST)))["port"]
    return port


# Raw servers, for what a well-behaved server never does.


@dataclass
class RawServer:
    target: Target
    connections: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@contextlib.asynccontextmanager
async def raw_server(handler: Handler, context: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    state = RawServer(Target("127.0.0.1", 0, tls=context is not None, host="cat.test"))

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        state.tasks.add(task)
        state.connections += 1
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=context)
    state.target = Target("127.0.0.1", server.sockets[0].getsockname()[1], tls=context is not None, host="cat.test")
    try:
        yield state
    finally:
        server.close()
        for task in state.tasks:
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        await server.wait_closed()


def answering(*replies: bytes, then_close: bool = False) -> Handler:
    """A server that reads a request head and writes the next reply, per request on one connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in replies:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
        if not then_close:
            await reader.read()

    return handle


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# Ordinary traffic


async def test_sequential_requests_share_one_connection(cat: Target, pool: UpstreamPool) -> None:
    ports = set()
    for _ in range(10):
        received = await echo(await pool.request(cat, "GET", "/echo", HOST))
        ports.add(received["port"])
    assert len(ports) == 1


async def test_post_sends_a_bytes_body_with_its_length(cat: Target, pool: UpstreamPool) -> None:
    body = b'{"points": 10}'
    received = await echo(await pool.request(cat, "POST", "/echo", [*HOST, (b"x-cat", b"tabby")], body))
    assert received["method"] == "POST"
    assert received["text"] == body.decode()
    assert received["headers"] == {"host": "cat.test", "x-cat": "tabby", "content-length": str(len(body))}


async def test_a_streamed_body_arrives_intact(cat: Target, pool: UpstreamPool) -> None:
    pieces = [bytes([i % 251]) * (1 + i * 997 % 70_000) for i in range(120)]  # ~4 MB: flow control matters

    async def upload() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    whole = b"".join(pieces)
    chunked = await echo(await pool.request(cat, "PUT", "/echo", HOST, upload()))
    assert chunked["headers"]["transfer-encoding"] == "chunked"
    assert (chunked["size"], chunked["sha256"]) == (len(whole), hashlib.sha256(whole).hexdigest())

    sized = await echo(await pool.request(cat, "PUT", "/echo", HOST, upload(), content_length=len(whole)))
    assert sized["headers"]["content-length"] == str(len(whole))
    assert "transfer-encoding" not in sized["headers"]
    assert sized["sha256"] == hashlib.sha256(whole).hexdigest()


async def test_a_streamed_body_waits_for_a_slow_server(pool: UpstreamPool) -> None:
    size = 32 * 1024 * 1024  # more than the socket buffers hold: the client must wait for drains

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.2)
        received = len(await reader.readexactly(size))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(received)), received))
        await reader.read()

    async def upload() -> AsyncIterator[bytes]:
        piece = b"m" * 65536
        for _ in range(size // len(piece)):
            yield piece

    async with raw_server(slow) as server:
        response = await pool.request(server.target, "POST", "/", HOST, upload(), content_length=size)
        assert await response.read() == str(size).encode()


async def test_a_body_that_breaks_its_declared_length_is_refused(cat: Target, pool: UpstreamPool) -> None:
    async def upload() -> AsyncIterator[bytes]:
        yield b"abc"

    with pytest.raises(ValueError, match="content_length"):
        await pool.request(cat, "PUT", "/echo", HOST, upload(), content_length=10)
    with pytest.raises(ValueError, match="content_length"):
        await pool.request(cat, "PUT", "/echo", HOST, b"abc", content_length=10)
    assert (await pool.request(cat, "GET", "/bytes?n=3", HOST)).status == 200


async def test_response_bodies_framed_by_length_and_by_chunks(cat: Target, pool: UpstreamPool) -> None:
    sized = await pool.request(cat, "GET", "/bytes?n=1000", HOST)
    assert (b"content-length", b"1000") in sized.headers
    assert await sized.read() == b"x" * 1000

    streamed = await pool.request(cat, "GET", "/stream?chunks=3&size=4", HOST)
    assert (b"transfer-encoding", b"chunked") in streamed.headers
    assert [chunk async for chunk in streamed.body()] == [b"AAAA", b"BBBB", b"CCCC"]


async def test_a_large_body_streams_to_a_slow_reader(cat: Target, pool: UpstreamPool) -> None:
    port = await connection_port(pool, cat)
    response = await pool.request(cat, "GET", "/stream?chunks=64&size=65536", HOST)
    total, first = 0, b""
    async for chunk in response.body():
        first = first or chunk[:1]
        total += len(chunk)
        await asyncio.sleep(0)
    assert (first, total) == (b"A", 64 * 65536)
    assert await connection_port(pool, cat) == port  # read to its end, the connection is reused


async def test_a_body_delimited_by_the_close(pool: UpstreamPool) -> None:
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"purr" * 1000
    async with raw_server(answering(reply, then_close=True)) as server:
        response = await pool.request(server.target, "GET", "/", HOST)
        assert await response.read() == b"purr" * 1000
        response = await pool.request(server.target, "GET", "/", HOST)
        assert await response.read() == b"purr" * 1000
    assert server.connections == 2


async def test_head_and_204_have_no_body_and_keep_the_connection(cat: Target, pool: UpstreamPool) -> None:
    port = await connection_port(pool, cat)
    head = await pool.request(cat, "HEAD", "/bytes?n=5", HOST)
    assert (head.status, await head.read()) == (200, b"")
    assert (b"content-length", b"5") in head.headers

    empty = await pool.request(cat, "DELETE", "/empty", HOST)
    assert (empty.status, await empty.read()) == (204, b"")

    assert await connection_port(pool, cat) == port


async def test_interim_responses_are_skipped(pool: UpstreamPool) -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + OK
    async with raw_server(answering(reply)) as server:
        response = await pool.request(server.target, "POST", "/", HOST, b"{}")
        assert (response.status, response.headers, await response.read()) == (200, [(b"content-length", b"2")], b"ok")


async def test_a_redirect_is_returned_not_followed(cat: Target, pool: UpstreamPool) -> None:
    response = await pool.request(cat, "GET", "/redirect", HOST)
    assert response.status == 302
    assert (b"location", b"/echo") in response.headers
    assert await response.read() == b""


async def test_fifty_concurrent_requests(cat: Target, pool: UpstreamPool) -> None:
    async def one(i: int) -> tuple[str, int]:
        received = await echo(await pool.request(cat, "POST", f"/echo?i={i}", HOST, f"cat {i}".encode()))
        return received["text"], received["port"]

    answers = await asyncio.gather(*(one(i) for i in range(50)))
    assert [text for text, _ in answers] == [f"cat {i}" for i in range(50)]
    first = {port for _, port in answers}
    assert len(first) == 50  # none was idle: each had a connection of its own

    again = await asyncio.gather(*(one(i) for i in range(20)))
    assert len({port for _, port in again} & first) == 10  # max_idle_per_target were kept


# Connections that go away


async def test_an_idle_connection_closed_by_the_server_is_replaced(pool: UpstreamPool) -> None:
    async with raw_server(answering(OK, then_close=True)) as server:
        assert await (await pool.request(server.target, "GET", "/", HOST)).read() == b"ok"
        await asyncio.sleep(0.05)
        assert await (await pool.request(server.target, "POST", "/", HOST, b"{}")).read() == b"ok"
    assert server.connections == 2


async def test_a_get_racing_the_servers_close_is_sent_again(pool: UpstreamPool) -> None:
    async with raw_server(answering(OK, then_close=True)) as server:
        for _ in range(5):
            assert await (await pool.request(server.target, "GET", "/", HOST)).read() == b"ok"


async def test_a_response_closed_early_is_not_reused(cat: Target, pool: UpstreamPool) -> None:
    port = await connection_port(pool, cat)
    big = await pool.request(cat, "GET", "/stream?chunks=64&size=65536", HOST)
    assert await anext(big.body())
    big.close()
    assert await connection_port(pool, cat) != port


# Failures, as the caller sees them


async def test_connection_refused(pool: UpstreamPool) -> None:
    nobody = Target("127.0.0.1", free_port(), tls=False, host="cat.test")
    with pytest.raises(UpstreamError) as caught:
        await pool.request(nobody, "POST", "/", HOST, b"{}")
    assert (caught.value.kind, caught.value.sent) == ("connect", False)


async def test_a_server_that_never_answers_times_out() -> None:
    loop = asyncio.get_running_loop()
    quick = UpstreamPool(connect_timeout=1.0, read_timeout=0.2, max_idle_per_target=1)
    async with raw_server(answering()) as server:
        started = loop.time()
        with pytest.raises(UpstreamError) as caught:
            await quick.request(server.target, "GET", "/", HOST)
        elapsed = loop.time() - started
    await quick.close()
    assert (caught.value.kind, caught.value.sent) == ("timeout", True)
    assert 0.15 < elapsed < 1.5


async def test_each_call_on_a_kept_connection_gets_its_whole_read_timeout() -> None:
    """The connection's one timer, set for the first call, goes off during the second: the
    second call still waits its own read_timeout, and then times out."""
    loop = asyncio.get_running_loop()
    quick = UpstreamPool(connect_timeout=1.0, read_timeout=0.4, max_idle_per_target=1)
    async with raw_server(answering(OK)) as server:  # answers the first request only
        first = await quick.request(server.target, "GET", "/", HOST)
        assert await first.read() == b"ok"
        await asyncio.sleep(0.25)
        started = loop.time()
        with pytest.raises(UpstreamError) as caught:
            await quick.request(server.target, "GET", "/", HOST)
        elapsed = loop.time() - started
    await quick.close()
    assert server.connections == 1, "the second call went on the kept connection"
    assert caught.value.kind == "timeout"
    assert 0.35 < elapsed < 1.5, elapsed


async def test_the_deadline_caps_a_trickling_body(pool: UpstreamPool) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            writer.write(b".")
            await writer.drain()
            await asyncio.sleep(0.02)

    loop = asyncio.get_running_loop()
    async with raw_server(trickle) as server:
        started = loop.time()
        response = await pool.request(server.target, "GET", "/", HOST, deadline=started + 0.3)
        with pytest.raises(UpstreamError) as caught:
            await response.read()
        elapsed = loop.time() - started
    assert caught.value.kind == "timeout"
    assert 0.25 < elapsed < 1.5


async def test_a_request_whose_deadline_has_passed_is_not_sent(pool: UpstreamPool) -> None:
    async with raw_server(answering(OK)) as server:
        past = asyncio.get_running_loop().time() - 0.001
        with pytest.raises(UpstreamError) as caught:
            await pool.request(server.target, "GET", "/", HOST, deadline=past)
    assert (caught.value.kind, caught.value.sent) == ("timeout", False)
    assert server.connections == 0


async def test_a_cancelled_request_leaves_no_connection_behind(pool: UpstreamPool) -> None:
    async def slow_then_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"/slow" in head:
                await asyncio.sleep(0.2)
            writer.write(OK)

    async with raw_server(slow_then_ok) as server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await pool.request(server.target, "GET", "/slow", HOST)
        # The late answer to /slow must not be taken for the answer to this one.
        assert await (await pool.request(server.target, "GET", "/", HOST)).read() == b"ok"
    assert server.connections == 2


async def test_closing_the_pool_ends_requests_in_flight(pool: UpstreamPool) -> None:
    async with raw_server(answering()) as server:
        pending = asyncio.create_task(pool.request(server.target, "GET", "/", HOST))
        await asyncio.sleep(0.05)
        await pool.close()
        with pytest.raises(UpstreamError) as in_flight:
            await pending
        with pytest.raises(UpstreamError) as after:
            await pool.request(server.target, "GET", "/", HOST)
    assert (in_flight.value.kind, after.value.kind, after.value.sent) == ("closed", "closed", False)


async def test_a_response_over_the_limit_is_refused(cat: Target, pool: UpstreamPool) -> None:
    with pytest.raises(UpstreamError) as announced:
        await pool.request(cat, "GET", "/bytes?n=10000", HOST, max_response_bytes=1000)
    assert announced.value.kind == "too_large"

    with pytest.raises(UpstreamError) as unannounced:  # chunked: found out as it arrives
        await fetch(pool, cat, "/stream?chunks=100&size=1000", max_response_bytes=10_000)
    assert unannounced.value.kind == "too_large"

    exact = await pool.request(cat, "GET", "/bytes?n=1000", HOST, max_response_bytes=1000)
    assert len(await exact.read()) == 1000


async def test_a_body_growing_over_the_limit_fails_while_read(pool: UpstreamPool) -> None:
    async def growing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n" + b"a" * 5000 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"1F40\r\n" + b"b" * 8000 + b"\r\n0\r\n\r\n")
        await reader.read()

    async with raw_server(growing) as server:
        response = await pool.request(server.target, "GET", "/", HOST, max_response_bytes=10_000)
        assert response.status == 200
        with pytest.raises(UpstreamError) as caught:
            await response.read()
    assert caught.value.kind == "too_large"


async def test_a_truncated_body_fails(pool: UpstreamPool) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    async with raw_server(answering(reply, then_close=True)) as server:
        with pytest.raises(UpstreamError) as caught:
            await (await pool.request(server.target, "GET", "/", HOST)).read()
    assert caught.value.kind == "closed"


async def test_a_malformed_response_fails(pool: UpstreamPool) -> None:
    async with raw_server(answering(b"HTTP/1.1 two hundred\r\n\r\n")) as server:
        with pytest.raises(UpstreamError) as caught:
            await pool.request(server.target, "GET", "/", HOST)
    assert (caught.value.kind, caught.value.sent) == ("protocol", True)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/a b", HOST),
        ("/a\r\nX-Injected: 1", HOST),
        ("/", [(b"x-a", b"1\r\nX-Injected: 1")]),
        ("/", [(b"x-a", b"1\nX-Injected: 1")]),
        ("/", [(b"x-a", b"1\x00")]),
        ("/", [(b"x-a\r\nX-Injected", b"1")]),
        ("/", [(b"x-a: 1\r\n", b"")]),
        ("/", [(b"x-a: 1", b"")]),
        ("/", [(b"x a", b"1")]),
        ("/", [(b"", b"1")]),
        ("/", [(b"Content-Length", b"0")]),
        ("/", [(b"transfer-encoding", b"chunked")]),
    ],
)
async def test_header_injection_is_refused(path: str, headers: list[tuple[bytes, bytes]]) -> None:
    pool = UpstreamPool(connect_timeout=1.0, read_timeout=1.0, max_idle_per_target=1)
    async with raw_server(answering(OK)) as server:
        with pytest.raises(ValueError, match=r"unsafe|set by the client"):
            await pool.request(server.target, "GET", path, headers)
    await pool.close()
    assert server.connections == 0  # refused before anything was sent


# TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


async def test_tls_checks_the_cats_name(certificate: Certificate) -> None:
    trusting = ssl.create_default_context(cadata=certificate.pem.decode())
    pool = UpstreamPool(connect_timeout=2.0, read_timeout=2.0, max_idle_per_target=2, ssl_context=trusting)
    try:
        async with raw_server(answering(OK, OK), certificate.server) as server:
            for _ in range(2):
                assert await (await pool.request(server.target, "GET", "/", HOST)).read() == b"ok"
            assert server.connections == 1

            impostor = Target(server.target.address, server.target.port, tls=True, host="dog.test")
            with pytest.raises(UpstreamError) as caught:
                await pool.request(impostor, "GET", "/", [(b"host", b"dog.test")])
            assert (caught.value.kind, caught.value.sent) == ("connect", False)
            assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    finally:
        await pool.close()


async def test_tls_refuses_an_untrusted_certificate(certificate: Certificate, pool: UpstreamPool) -> None:
    async with raw_server(answering(OK), certificate.server) as server:
        with pytest.raises(UpstreamError) as caught:
            await pool.request(server.target, "GET", "/", HOST)
    assert caught.value.kind == "connect"

"""The proxy's upstream client against aiohttp and httpx, forwarding to one local upstream.

Every proxied call is one exchange with a cat's API, so the client's CPU per exchange is paid on
every call. Three clients forward the same request to the same upstream, in one run, on uvloop
(as the proxy runs), with keep-alive connections, ``--concurrency`` callers at a time:

- aiohttp's ``ClientSession`` (a ``TCPConnector`` limited to the callers): the reference;
- httpx's ``AsyncClient`` (its pool limited to the callers);
- ``cathouse.proxy.upstream.UpstreamPool``, as the proxy uses it (a ``Target`` already checked,
  the headers as byte pairs).

The request is what the proxy forwards for a small JSON call: ``POST`` with a few headers and a
200-byte body; the reply is 300 bytes of JSON, read whole. The upstream is a minimal HTTP/1.1
server (uvloop and httptools) in a process of its own, started by this script, so its CPU is not
counted; it shares the machine's cores, so requests per second understate what each client
could do alone, while this process's CPU per request (the proxy's cost) holds. The load average
is printed.

    .venv/bin/python bench/upstream_client.py --requests 20000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import cast

import aiohttp
import httpx
import uvloop
from httptools import HttpRequestParser

from cathouse.proxy.upstream import Target, UpstreamPool
from harness import HOST, free_port

REPLY_BODY = (
    b'{"id":"c0ffee","points":1200,"level":7,"badges":["early","loyal","curious"],' + b'"x":"' + b"y" * 200 + b'"}'
)
REPLY = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(REPLY_BODY),
    REPLY_BODY,
)
REQUEST_BODY = b'{"event":"purr","user":"0b8e5f4c-3d2a-4b1c-9e8f-7a6b5c4d3e2f","n":1,"pad":"' + b"z" * 120 + b'"}'
PATH = "/v1/events?source=cathouse"
HEADERS = {
    "host": "cat.example",
    "authorization": "Bearer 3f1c9d7e5b2a4c6e8f0a1b3d5e7f9a2c",
    "content-type": "application/json",
    "accept": "application/json",
    "x-request-id": "5f0c8f0e6a2b4c1d9e7f3a2b1c0d9e8f",
    "x-cathouse-user": "0b8e5f4c-3d2a-4b1c-9e8f-7a6b5c4d3e2f",
}

Send = Callable[[], Awaitable[None]]


class _Upstream(asyncio.Protocol):
    """Answers every request with ``REPLY``, keeping the connection alive."""

    def __init__(self) -> None:
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, though not registered as one

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        self.transport.write(REPLY)


def serve(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Upstream, HOST, port, backlog=1024)
        await server.serve_forever()

    uvloop.run(main())


async def run(send: Send, requests: int, concurrency: int) -> tuple[float, float]:
    """(µs of this process's CPU per request, requests per second)."""
    per_caller = requests // concurrency

    async def caller() -> None:
        for _ in range(per_caller):
            await send()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = per_caller * concurrency
    return cpu / done * 1e6, done / wall


async def measure(port: int, requests: int, concurrency: int) -> dict[str, tuple[float, float]]:
    url = f"http://{HOST}:{port}{PATH}"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
    pool = UpstreamPool(connect_timeout=5.0, read_timeout=10.0, max_idle_per_target=concurrency)
    target = Target(HOST, port, False, "cat.example")
    header_pairs = [(name.encode(), value.encode()) for name, value in HEADERS.items()]

    async def with_aiohttp() -> None:
        async with session.post(url, data=REQUEST_BODY, headers=HEADERS) as response:
            body = await response.read()
        if response.status != 200 or body != REPLY_BODY:
            raise SystemExit(f"aiohttp: unexpected reply {response.status}")

    async def with_httpx() -> None:
        response = await client.post(url, content=REQUEST_BODY, headers=HEADERS)
        if response.status_code != 200 or response.content != REPLY_BODY:
            raise SystemExit(f"httpx: unexpected reply {response.status_code}")

    async def with_pool() -> None:
        response = await pool.request(target, "POST", PATH, header_pairs, REQUEST_BODY)
        body = await response.read()
        if response.status != 200 or body != REPLY_BODY:
            raise SystemExit(f"UpstreamPool: unexpected reply {response.status}")

    results = {}
    try:
        for name, send in (
            ("aiohttp (reference)", with_aiohttp),
            ("httpx", with_httpx),
            ("cathouse.proxy.upstream", with_pool),
        ):
            await run(send, min(requests, 2_000), concurrency)  # warm up: connections opened
            results[name] = await run(send, requests, concurrency)
    finally:
        await session.close()
        await client.aclose()
        await pool.close()
    return results


async def wait_listening(port: int, upstream: subprocess.Popen[bytes]) -> None:
    for _ in range(500):
        if upstream.poll() is not None:
            raise SystemExit("the upstream server exited")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        return
    raise SystemExit("the upstream server did not listen within 5 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the upstream's own process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    port = free_port()
    upstream = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        uvloop.run(wait_listening(port, upstream))
        results = uvloop.run(measure(port, args.requests, args.concurrency))
    finally:
        upstream.terminate()
        upstream.wait()

    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}; ", end="")
    print(f"{args.requests} requests per client, {args.concurrency} at a time")
    ref_cpu, ref_rate = next(iter(results.values()))
    print(f"{'client':<26} {'µs CPU/request':>15} {'requests/s':>11} {'CPU ÷ aiohttp':>14} {'req/s ÷ aiohttp':>16}")
    for name, (cpu, rate) in results.items():
        print(f"{name:<26} {cpu:>15.1f} {rate:>11.0f} {cpu / ref_cpu:>14.2f} {rate / ref_rate:>16.2f}")


if __name__ == "__main__":
    main()

"""Real brokers for the adapter tests: the shared NATS and Redis servers when they answer, Kafka
when ``CATHOUSE_TEST_KAFKA_URL`` names one, and private servers a test starts and stops itself.

Every test gets names of its own (a fresh prefix) and deletes them afterwards, so runs never
collide on a shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cathouse.platform.broker.base import Broker, ConsumerOptions
from cathouse.platform.broker.kafka import KafkaBroker, bootstrap_servers
from cathouse.platform.broker.nats_js import NatsBroker
from cathouse.platform.broker.redis_streams import RedisStreamsBroker
from cathouse.platform.outbox.relay import Event
from tests.support import free_port

NATS_URL = os.environ.get("CATHOUSE_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("CATHOUSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
KAFKA_URL = os.environ.get("CATHOUSE_TEST_KAFKA_URL")
NATS_SERVER = shutil.which("nats-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
REDIS_SERVER = shutil.which("redis-server")

# Quick retries and short leases, so redelivery and takeover happen within a test's patience.
FAST = ConsumerOptions(backoff=0.05, max_backoff=0.5, lease=2.0)
PARTITIONS = 4


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def build(kind: str, url: str, prefix: str, *, partitions: int = PARTITIONS, publish_timeout: float = 2.0) -> Broker:
    if kind == "nats":
        return NatsBroker([url], prefix=prefix, partitions=partitions, publish_timeout=publish_timeout, options=FAST)
    if kind == "redis":
        return RedisStreamsBroker(
            url, prefix=prefix, partitions=partitions, publish_timeout=publish_timeout, options=FAST
        )
    return KafkaBroker(
        bootstrap_servers(url), prefix=prefix, partitions=partitions, publish_timeout=publish_timeout, options=FAST
    )


async def forget(kind: str, url: str, prefix: str) -> None:
    """Delete everything a test made on a shared server."""
    if kind == "nats":
        import nats

        nc = await nats.connect(url)
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(f"{prefix.upper()}_EVENTS")
        await nc.close()
    elif kind == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    else:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(url))
        await admin.start()
        with contextlib.suppress(Exception):
            await admin.delete_topics([f"{prefix}.events"])
        await admin.close()


def url_of(kind: str) -> str:
    if kind == "nats":
        if not reachable(NATS_URL, 4222):
            pytest.skip(f"no NATS server at {NATS_URL}")
        return NATS_URL
    if kind == "redis":
        if not reachable(REDIS_URL, 6379):
            pytest.skip(f"no Redis server at {REDIS_URL}")
        return REDIS_URL
    if not KAFKA_URL:
        pytest.skip("set CATHOUSE_TEST_KAFKA_URL to test the Kafka adapter against a server")
    return KAFKA_URL


@dataclass
class Brokers:
    """Brokers of one kind on one set of names; each is stopped and the names deleted afterwards."""

    kind: str
    url: str
    prefix: str = field(default_factory=new_prefix)
    made: list[Broker] = field(default_factory=list)

    def __call__(self, **kwargs: object) -> Broker:
        broker = build(self.kind, self.url, self.prefix, **kwargs)  # type: ignore[arg-type]
        self.made.append(broker)
        return broker


@pytest.fixture(params=["nats", "redis", "kafka"])
async def brokers(request: pytest.FixtureRequest) -> AsyncIterator[Brokers]:
    """``brokers()`` makes a broker (publisher or subscriber) of the kind under test."""
    made = Brokers(request.param, url_of(request.param))
    try:
        yield made
    finally:
        for broker in made.made:
            await broker.stop()
        await forget(made.kind, made.url, made.prefix)


@pytest.fixture
def nats_url() -> str:
    return url_of("nats")


@pytest.fixture
def redis_url() -> str:
    return url_of("redis")


def event(aggregate: str, n: int, *, aggregate_type: str = "cat", event_type: str = "cat.updated") -> Event:
    return Event(
        id=str(uuid.uuid4()),
        seq=n,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate,
        event_type=event_type,
        schema_version=1,
        payload={"n": n, "aggregate": aggregate},
        occurred_at=datetime.now(UTC),
        request_id=None,
        attempts=0,
    )


class Collector:
    """A handler that records what it got and tells when ``expect`` distinct events arrived."""

    def __init__(self, expect: int, name: str = "") -> None:
        self.name = name
        self.expect = expect
        self.events: list[Event] = []
        self.ids: set[str] = set()
        self.done = asyncio.Event()  # once ``expect`` distinct events arrived
        self._arrived = asyncio.Condition()

    async def __call__(self, e: Event) -> None:
        self.events.append(e)
        self.ids.add(e.id)
        if len(self.ids) >= self.expect:
            self.done.set()
        async with self._arrived:
            self._arrived.notify_all()

    async def wait(self, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            await self.done.wait()

    async def wait_for(self, count: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.ids) >= count)

    def by_aggregate(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for e in self.events:
            out[e.aggregate_id].append(e.payload["n"])
        return dict(out)

    def deduplicated(self) -> dict[str, list[int]]:
        """``by_aggregate`` of first deliveries only, as a consumer that dedupes by event id sees it."""
        seen: set[str] = set()
        out: dict[str, list[int]] = defaultdict(list)
        for e in self.events:
            if e.id not in seen:
                seen.add(e.id)
                out[e.aggregate_id].append(e.payload["n"])
        return dict(out)


@contextlib.contextmanager
def server(argv: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A private server process, up once its port accepts connections."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not reachable(f"tcp://127.0.0.1:{port}", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


PrivateServer = Callable[[], contextlib.AbstractContextManager[subprocess.Popen[bytes]]]


@pytest.fixture
def private_redis(tmp_path: Path) -> tuple[str, PrivateServer]:
    """A Redis of the test's own (URL, and a context manager running it), persisting to tmp_path."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
    argv += ["--dir", str(tmp_path)]
    return f"redis://127.0.0.1:{port}/0", lambda: server(argv, port)


@pytest.fixture
def private_nats(tmp_path: Path) -> tuple[str, PrivateServer]:
    """A NATS with JetStream of the test's own, storing in tmp_path."""
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed")
    port = free_port()
    argv = [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path)]
    return f"nats://127.0.0.1:{port}", lambda: server(argv, port)

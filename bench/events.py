"""Commit-to-feed lag: from a service's commit of an event to the entry in a live activity stream.

A writer in this process commits one event per transaction with ``record_event`` (as a request
does), at a steady ``--rate`` for ``--seconds``, on an open-loop schedule: a late commit does not
delay the ones after it, so a slow pipeline cannot hide its lag by slowing the writer. The events
are what the platform emits (cats published and reviewed, installations created and moved
through their lifecycle, users signing up) over a few hundred aggregates, each making a feed entry.

A real ``cathouse relay`` process runs the relay and every worker's handlers, the activity
consumer among them, with the platform's default event settings. In this process an activity
hub (``cathouse.activity.hub``, what every live stream of the service reads from) holds one
subscription that sees every entry: the hub LISTENs for the read model's ``activity_entries``
notification, reads what is new, looks the names up, and offers the entries to its streams.

Lag = the moment the subscription receives the entry minus the moment the writer's COMMIT returned,
both on this process's monotonic clock. So it includes the relay's wake-up (LISTEN/NOTIFY), the
hop through the broker, the consumer's transaction, the notification and the hub's one read of
the new entries: all a user waiting on a live feed waits for, except the last write to the socket.

Modes, one after the other in one run: no broker (the relay calls the consumer in process), NATS
JetStream at ``--nats`` and Redis Streams at ``--redis-streams`` when they answer, Kafka when
``--kafka`` names one; each with the read model in PostgreSQL, and again in Redis when
``CATHOUSE_REDIS_URL`` is set. Every mode uses names of its own on the servers, deleted after.

Each mode also reports "fed/s", the entries that reached the feed per second over the run: below
the writer's rate, the pipeline cannot keep up at that rate and its lag only grows with time.
Everything shares this machine's cores (the writer and the hub here, the relay process, the
broker, PostgreSQL); the load average is printed.

The references: the target (p99 under 250 ms) and what users wait today ("2-3 seconds");
and, measured in this run for each store, the work no pipeline can skip: one event applied by a
consumer in this process straight to the store (no relay, no broker, no notification), one at a
time. The lag's p50 over that apply's p50 is what the pipeline adds, as a multiple.

The database is ``CATHOUSE_DATABASE_URL``'s server when set (a database of its own is created
there and dropped at the end), an embedded PostgreSQL otherwise.

    CATHOUSE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    CATHOUSE_REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/events.py --rate 100 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar
from urllib.parse import urlsplit

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.activity.consumer import Consumer
from cathouse.activity.hub import Hub
from cathouse.activity.stores import open_read_model
from cathouse.activity.views import Readers, Viewer
from cathouse.contracts.events import auth as users
from cathouse.contracts.events import catalog as cats
from cathouse.contracts.events import installation as installs
from cathouse.platform import migrations
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.embedded import embedded_database
from cathouse.platform.outbox import record_event
from cathouse.platform.outbox.relay import Event
from cathouse.platform.settings import Settings
from cathouse.services import COMPONENTS, registry
from harness import stop

TARGET_P99 = 0.250
TODAY = (2.0, 3.0)  # "users wait 2-3 seconds"
WARMUP_EVENTS = 50
APPLY_SAMPLES = 200


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop the relay and drop the database


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _engine(url: str, pool_size: int = 2) -> AsyncEngine:
    settings = Settings(_env_file=None, pool_pre_ping=False)
    return create_engine(settings, application_name="cathouse-bench", pool_size=pool_size, url=url)


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new database on the server of ``server_url``, migrated to head, dropped at the end."""
    name = f"cathouse_bench_{uuid.uuid4().hex[:12]}"
    admin = _engine(server_url, pool_size=1)
    try:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = _with_database(server_url, name)
        try:
            engine = _engine(url, pool_size=1)
            await migrations.upgrade(engine, list(COMPONENTS.values()))
            await engine.dispose()
            yield url
        finally:
            async with admin.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


# --- what is written ------------------------------------------------------------------------------


@dataclass
class Traffic:
    """Events the activity projection turns into feed entries, over a few hundred aggregates: 10% cat
    events (published, new versions), 35% reviews, 15% sign-ups, 15% installs and 25% installations
    moving through their lifecycle."""

    rng: random.Random
    cats: list[uuid.UUID] = field(default_factory=list)
    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    installations: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, str]] = field(default_factory=dict)

    LIFECYCLE: ClassVar[dict[str, str]] = {
        "pending": "provisioning",
        "provisioning": "active",
        "active": "suspended",
        "suspended": "active",
    }

    def next(self) -> tuple[str, uuid.UUID, str, dict[str, Any]]:
        """(aggregate_type, aggregate_id, event_type, payload)"""
        roll = self.rng.random()
        if not self.cats or roll < 0.10:
            return self._cat()
        if roll < 0.45:
            cat_id = self.rng.choice(self.cats)
            ids = {"cat_id": str(cat_id), "review_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())}
            review = {"slug": f"cat-{cat_id.hex[:8]}", "rating": self.rng.randint(1, 5), "verified": False}
            return "cat", cat_id, cats.ReviewCreated.type, {**ids, **review}
        if roll < 0.60:
            user_id = uuid.uuid4()
            return "user", user_id, users.UserRegistered.type, {"user_id": str(user_id), "display_name": "Someone"}
        if roll < 0.75 or not self.installations:
            installation_id, cat_id, user_id = uuid.uuid4(), self.rng.choice(self.cats), uuid.uuid4()
            if len(self.installations) < 300:
                self.installations[installation_id] = (cat_id, user_id, "pending")
            ids = {"installation_id": str(installation_id), "cat_id": str(cat_id), "user_id": str(user_id)}
            created = {"version": "1.0.0", "name": "Main", "permissions": ["points:read"]}
            return "installation", installation_id, installs.InstallationCreated.type, {**ids, **created}
        installation_id = self.rng.choice(list(self.installations))
        cat_id, user_id, before = self.installations[installation_id]
        after = self.LIFECYCLE[before]
        self.installations[installation_id] = (cat_id, user_id, after)
        ids = {"installation_id": str(installation_id), "cat_id": str(cat_id), "user_id": str(user_id)}
        moved = {"from": before, "to": after, "version": "1.0.0", "reason": None, "by": str(user_id)}
        return "installation", installation_id, installs.InstallationStatusChanged.type, {**ids, **moved}

    def _cat(self) -> tuple[str, uuid.UUID, str, dict[str, Any]]:
        if len(self.cats) < 50:
            cat_id = uuid.uuid4()
            self.cats.append(cat_id)
            self.versions[cat_id] = 0
            listing = {"name": "Points", "category": "points", "version": "1.0.0", "publisher_id": str(uuid.uuid4())}
            return (
                "cat",
                cat_id,
                cats.CatPublished.type,
                {"cat_id": str(cat_id), "slug": f"cat-{cat_id.hex[:8]}", **listing},
            )
        cat_id = self.rng.choice(self.cats)
        self.versions[cat_id] += 1
        version = {"version": f"1.{self.versions[cat_id]}.0", "permissions": ["points:read"], "current": True}
        return (
            "cat",
            cat_id,
            cats.CatVersionPublished.type,
            {"cat_id": str(cat_id), "slug": f"cat-{cat_id.hex[:8]}", **version},
        )


class Writer:
    def __init__(self, engine: AsyncEngine, traffic: Traffic) -> None:
        self.sessions = sessionmaker(engine)
        self.traffic = traffic

    async def commit_one(self) -> tuple[str, float]:
        """One event in a transaction of its own: its id, and when the COMMIT returned."""
        aggregate_type, aggregate_id, event_type, payload = self.traffic.next()
        async with self.sessions() as session, session.begin():
            event = record_event(
                session,
                aggregate_type=aggregate_type,
                aggregate_id=str(aggregate_id),
                event_type=event_type,
                payload=payload,
            )
        return str(event.id), time.perf_counter()

    async def steady(self, rate: float, seconds: float) -> tuple[dict[str, float], float]:
        """Events at ``rate`` a second for ``seconds``, each at its scheduled time or as soon after as
        possible: when each committed, and the rate achieved."""
        count = max(1, round(rate * seconds))
        committed: dict[str, float] = {}
        start = time.perf_counter()
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            event_id, at = await self.commit_one()
            committed[event_id] = at
        return committed, count / (time.perf_counter() - start)


# --- what is seen -----------------------------------------------------------------------------------


class Watcher:
    """A live stream's view: one hub subscription that sees every entry, and when each arrived."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.model = open_read_model(settings, engine)
        self.hub = Hub(
            self.model,
            engine,
            sessionmaker(engine),
            Readers.of(registry()),
            poll_interval=settings.activity.stream_poll_interval,
        )
        self.seen: dict[str, float] = {}
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        subscription = await self.hub.subscribe(Viewer(principal=None, everyone=True))

        async def receive() -> None:
            while True:
                entries, _ = await subscription.queue.get()
                now = time.perf_counter()
                for entry in entries:
                    self.seen.setdefault(entry.event_id, now)
                self._arrived.set()

        self._task = asyncio.create_task(receive())
        async with asyncio.timeout(10):
            await self.hub.listening.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.hub.close()
        await self.model.close()

    async def wait_for(self, ids: set[str], within: float) -> None:
        deadline = time.perf_counter() + within
        while not ids <= self.seen.keys() and time.perf_counter() < deadline:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), 0.5)


# --- the modes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    broker: str  # "none", "nats", "redis", "kafka"
    broker_url: str | None
    store: str  # "postgres", "redis"

    @property
    def name(self) -> str:
        broker = {"none": "no broker", "nats": "NATS JetStream", "redis": "Redis Streams", "kafka": "Kafka"}
        return f"{broker[self.broker]}, {self.store} store"


@dataclass
class Result:
    mode: Mode
    lags: list[float]
    written: int
    missing: int
    rate: float  # events committed per second
    fed: float  # entries reaching the feed per second: below ``rate``, the pipeline cannot keep up


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.split(",")[0] if "://" in url else f"tcp://{url}")
    with (
        contextlib.suppress(OSError),
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 1),
    ):
        return True
    return False


async def forget(mode: Mode, prefix: str, redis_url: str | None, activity_prefix: str) -> None:
    """Delete the names a mode made on shared servers."""
    if mode.broker == "nats" and mode.broker_url:
        import nats

        nc = await nats.connect(mode.broker_url)
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(f"{prefix.upper().replace('-', '_')}_EVENTS")
        await nc.close()
    if mode.broker == "kafka" and mode.broker_url:
        from aiokafka.admin import AIOKafkaAdminClient

        from cathouse.platform.broker.kafka import bootstrap_servers

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(mode.broker_url))
        await admin.start()
        with contextlib.suppress(Exception):
            await admin.delete_topics([f"{prefix}.events"])
        await admin.close()
    patterns = []
    if mode.broker == "redis" and mode.broker_url:
        patterns.append((mode.broker_url, f"{prefix}:*"))
    if mode.store == "redis" and redis_url:
        patterns.append((redis_url, f"{activity_prefix}*"))
    for url, pattern in patterns:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
        keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()


async def empty(engine: AsyncEngine) -> None:
    """No event and no read model left by the mode before (the workers' own tables are untouched)."""
    async with engine.begin() as conn:
        tables = await conn.scalars(
            text(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname IN ('events', 'activity') AND tablename <> :version"
            ),
            {"version": migrations.VERSION_TABLE},
        )
        await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY"))


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def start_relay(database_url: str, mode: Mode, env_extra: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATHOUSE_")}
    env.update({"CATHOUSE_DATABASE_URL": database_url, "CATHOUSE_LOG_LEVEL": "WARNING", **env_extra})
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "cathouse", "relay"], env=env, stdout=out, stderr=out)


async def wait_listening(engine: AsyncEngine, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the relay LISTENs for committed events (its workers, and their broker consumers, are up)."""
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cathouse relay exited with {proc.returncode}:\n{tail(log)}")
        async with engine.connect() as conn:
            listening = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'cathouse-relay-listen'"
                )
            )
        if listening:
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"cathouse relay did not start listening within 60 s:\n{tail(log)}")


async def run_mode(database_url: str, engine: AsyncEngine, mode: Mode, args: argparse.Namespace, logs: Path) -> Result:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    activity_prefix = f"cathouse-bench-{uuid.uuid4().hex[:8]}:activity:"
    redis_url = os.environ.get("CATHOUSE_REDIS_URL")
    env = {"CATHOUSE_ACTIVITY__REDIS_PREFIX": activity_prefix}
    if mode.store == "redis" and redis_url:
        env["CATHOUSE_REDIS_URL"] = redis_url
    if mode.broker_url:
        env.update({"CATHOUSE_BROKER_URL": mode.broker_url, "CATHOUSE_EVENTS__BROKER_PREFIX": prefix})
    settings = store_settings(database_url, mode.store, activity_prefix)
    await empty(engine)
    log = logs / f"relay-{mode.broker}-{mode.store}.log"
    proc = start_relay(database_url, mode, env, log)
    try:
        await wait_listening(engine, proc, log)
        writer = Writer(engine, Traffic(random.Random(7)))  # noqa: S311 - a reproducible mix, not a secret
        async with Watcher(settings, engine) as watcher:
            warmup = {(await writer.commit_one())[0] for _ in range(WARMUP_EVENTS)}
            await watcher.wait_for(warmup, within=60)
            if not warmup <= watcher.seen.keys():
                raise SystemExit(f"{mode.name}: the warm-up events never reached the feed:\n{tail(log)}")
            committed, rate = await writer.steady(args.rate, args.seconds)
            await watcher.wait_for(set(committed), within=args.patience)
            lags = [watcher.seen[i] - at for i, at in committed.items() if i in watcher.seen]
            last = max((watcher.seen[i] for i in committed if i in watcher.seen), default=0.0)
            fed = len(lags) / max(1e-9, last - min(committed.values())) if lags else 0.0
    finally:
        stop(proc)
        await forget(mode, prefix, redis_url, activity_prefix)
    return Result(mode, lags, len(committed), len(committed) - len(lags), rate, fed)


async def bare_apply(engine: AsyncEngine, settings: Settings, samples: int) -> list[float]:
    """Seconds to apply one event straight to the store, ``samples`` times; the store is emptied after."""
    model = open_read_model(settings, engine)
    consumer, traffic = Consumer(model), Traffic(random.Random(3))  # noqa: S311 - not a secret
    seconds = []
    try:
        for seq in range(1, WARMUP_EVENTS + samples + 1):
            aggregate_type, aggregate_id, event_type, payload = traffic.next()
            event = Event(
                id=str(uuid.uuid4()),
                seq=seq,
                aggregate_type=aggregate_type,
                aggregate_id=str(aggregate_id),
                event_type=event_type,
                schema_version=1,
                payload=payload,
                occurred_at=datetime.now(UTC),
                request_id=None,
                attempts=0,
            )
            start = time.perf_counter()
            await consumer.on_event(event)
            if seq > WARMUP_EVENTS:  # the first ones fill the caches (statements, the server's)
                seconds.append(time.perf_counter() - start)
    finally:
        await model.close()
    await empty(engine)
    return seconds


def store_settings(database_url: str, store: str, activity_prefix: str) -> Settings:
    redis_url = os.environ.get("CATHOUSE_REDIS_URL") if store == "redis" else None
    return Settings(
        _env_file=None,
        database_url=database_url,  # type: ignore[arg-type]
        redis_url=redis_url,  # type: ignore[arg-type]
        activity={"redis_prefix": activity_prefix},  # type: ignore[arg-type]
    )


def modes(args: argparse.Namespace) -> tuple[list[Mode], list[str]]:
    brokers: list[tuple[str, str | None]] = [("none", None)] if "none" in args.brokers else []
    skipped = []
    for kind, url, port in (
        ("nats", args.nats, 4222),
        ("redis", args.redis_streams, 6379),
        ("kafka", args.kafka, 9092),
    ):
        if kind not in args.brokers:
            continue
        if not url:
            skipped.append(f"{kind}: no URL given")
        elif not reachable(url if kind != "kafka" else url.removeprefix("kafka://"), port):
            skipped.append(f"{kind}: nothing answers at {url}")
        else:
            brokers.append((kind, url if kind != "kafka" or url.startswith("kafka://") else f"kafka://{url}"))
    stores = ["postgres"] if "postgres" in args.stores else []
    if "redis" in args.stores:
        if os.environ.get("CATHOUSE_REDIS_URL"):
            stores.append("redis")
        else:
            skipped.append("redis store: CATHOUSE_REDIS_URL unset")
    return [Mode(b, u, s) for s in stores for b, u in brokers], skipped


def times(ratio: float) -> str:
    return f"{ratio:.0f}" if ratio >= 10 else f"{ratio:.1f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(
    results: list[Result], applies: dict[str, list[float]], args: argparse.Namespace, load: tuple[float, float]
) -> None:
    print(
        f"{os.cpu_count()} cores, load average {load[0]:.2f} before and {load[1]:.2f} after; "
        f"{args.rate:g} events/s for {args.seconds:g} s per mode, one event per transaction; "
        "a `cathouse relay` process with the default event settings"
    )
    print(
        "lag: the writer's COMMIT returned → the entry reached an activity hub subscription "
        "(woken by NOTIFY activity_entries, one read of the new entries)"
    )
    reference = {store: statistics.median(seconds) for store, seconds in applies.items()}
    for store, seconds in applies.items():
        print(
            f"reference (measured): one event applied straight to the {store} store in this process, "
            f"p50 {ms(reference[store])} ms, p99 {ms(percentile(seconds, 99))} ms ({len(seconds)} events)"
        )
    width = max(len(r.mode.name) for r in results)
    print(
        f"{'mode':<{width}}  {'events':>6}  {'rate/s':>6}  {'fed/s':>6}  {'p50 ms':>7}  {'p95 ms':>7}  {'p99 ms':>7}  "
        f"{'max ms':>7}  {'p99 ÷ 250 ms':>12}  {'2-3 s ÷ p99':>12}  {'p50 ÷ apply':>11}"
    )
    for r in results:
        if not r.lags:
            print(f"{r.mode.name:<{width}}  {r.written:>6}  nothing reached the feed")
            continue
        p50, p95, p99 = (percentile(r.lags, p) for p in (50, 95, 99))
        missing = f"  ({r.missing} not in the feed after {args.patience:g} s)" if r.missing else ""
        today = f"{times(TODAY[0] / p99)}-{times(TODAY[1] / p99)}x"
        print(
            f"{r.mode.name:<{width}}  {len(r.lags):>6}  {r.rate:>6.1f}  {r.fed:>6.1f}  "
            f"{ms(p50):>7}  {ms(p95):>7}  {ms(p99):>7}  {ms(max(r.lags)):>7}  {p99 / TARGET_P99:>11.2f}x  "
            f"{today:>12}  {p50 / reference[r.mode.store]:>10.1f}x{missing}"
        )
    measured = [r for r in results if r.lags]
    if measured:
        worst = max(measured, key=lambda r: percentile(r.lags, 99))
        met = all(r.lags and percentile(r.lags, 99) < TARGET_P99 and not r.missing for r in results)
        print(
            f"worst p99: {ms(percentile(worst.lags, 99))} ms ({worst.mode.name}) = "
            f"{percentile(worst.lags, 99) / TARGET_P99:.2f}x the 250 ms target; "
            + ("every mode meets it" if met else "not every mode meets it")
        )


async def run(url: str, args: argparse.Namespace, server: str) -> None:
    chosen, skipped = modes(args)
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    async with fresh_database(url) as database:
        engine = _engine(database, pool_size=3)
        logs = Path(tempfile.mkdtemp(prefix="cathouse-bench-events-"))
        applies: dict[str, list[float]] = {}
        try:
            load_before = os.getloadavg()[0]
            for store in dict.fromkeys(mode.store for mode in chosen):
                print(f"reference: {APPLY_SAMPLES} events applied to the {store} store ({server})", file=sys.stderr)
                prefix = f"cathouse-bench-{uuid.uuid4().hex[:8]}:activity:"
                try:
                    applies[store] = await bare_apply(engine, store_settings(database, store, prefix), APPLY_SAMPLES)
                finally:
                    await forget(Mode("none", None, store), "", os.environ.get("CATHOUSE_REDIS_URL"), prefix)
            results = []
            for mode in chosen:
                print(f"{mode.name}: {args.rate:g}/s for {args.seconds:g} s", file=sys.stderr)
                results.append(await run_mode(database, engine, mode, args, logs))
            load_after = os.getloadavg()[0]
        finally:
            await engine.dispose()
            shutil.rmtree(logs, ignore_errors=True)
    report(results, applies, args, (load_before, load_after))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="events committed per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each mode writes")
    parser.add_argument("--patience", type=float, default=60.0, help="seconds to wait for the last entries")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS JetStream to try ('' to skip)")
    parser.add_argument("--redis-streams", default="redis://127.0.0.1:6379/0", help="Redis Streams to try ('' to skip)")
    parser.add_argument("--kafka", default=os.environ.get("CATHOUSE_BENCH_KAFKA_URL", ""), help="kafka://host:port")
    parser.add_argument("--brokers", default="none,nats,redis,kafka", help="which modes of delivery to run")
    parser.add_argument("--stores", default="postgres,redis", help="which read-model stores to run")
    args = parser.parse_args()
    args.brokers, args.stores = set(args.brokers.split(",")), set(args.stores.split(","))
    if args.rate <= 0 or args.seconds <= 0:
        parser.error("--rate and --seconds must be positive")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    configured = os.environ.get("CATHOUSE_DATABASE_URL")
    if configured:
        asyncio.run(run(configured, args, make_url(configured).render_as_string(hide_password=True)))
        return
    data_dir = Path(tempfile.mkdtemp(prefix="cathouse-bench-"))
    try:
        with embedded_database(data_dir) as url:
            asyncio.run(run(url, args, "embedded"))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

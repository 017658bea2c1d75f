"""The activity read model when processes die, a broker goes away, and relays run side by side:
the durability tests of issue 7, through real ``cathouse relay`` processes.

A ``cathouse relay`` process runs the outbox relay and every worker's handlers, the activity
consumer among them. The test process plays the services: one writer commits events with
``record_event``, so each aggregate's events commit in ``seq`` order. What it writes is a plausible
marketplace history (cats published, versioned and reviewed, installations going through their
lifecycle, users signing up) whose read model can be predicted exactly: an event lost or applied
twice shows in the counters, and so does one applied out of order (an installation's status
changes count installs right only in order), besides the entries' own order per aggregate.

Duplicate deliveries absorbed are counted from the consumer's debug line
(``consumer.DUPLICATE_MESSAGE``): the children log at DEBUG, and stderr is line-buffered, so the
count survives a SIGKILL where the process's metric would not.

Sizes: every ``make test`` runs shorter versions (``SUITE``, about a minute); ``pytest -m e2e``
runs the full scale (``FULL``: 10,000 events for the kill test, a 60 s broker outage, every broker),
and so does CATHOUSE_TEST_FULL_DURABILITY=1. The kill test checks the Redis read model too when
CATHOUSE_REDIS_URL is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.activity.consumer import DUPLICATE_MESSAGE
from cathouse.activity.readmodel import Feed, ReadModel
from cathouse.activity.stores import PostgresReadModel, RedisReadModel
from cathouse.contracts.events import auth as users
from cathouse.contracts.events import catalog as cats
from cathouse.contracts.events import installation as installs
from cathouse.platform.db import sessionmaker
from cathouse.platform.outbox import record_event
from tests.activity.conftest import REDIS_URL, drop_keys, redis_prefix
from tests.conftest import truncate_all
from tests.platform.broker.conftest import NATS_SERVER, REDIS_SERVER, forget, new_prefix, server, url_of
from tests.support import cathouse_env, free_port, start_cathouse, terminate_and_wait

pytestmark = [pytest.mark.e2e]


@dataclass(frozen=True)
class Scale:
    kill_events: int
    # Events a second the writer commits during the kill test.
    kill_rate: float
    kills: int
    # Seconds a relay process works before its SIGKILL (from when it listens).
    kill_after: tuple[float, float]
    outage_seconds: float
    side_by_side_events: int
    # Through which broker (none, nats, redis) to which read-model store (postgres, redis).
    kill_cases: tuple[tuple[str, str], ...]
    # Without a broker, NATS, Redis Streams: which the other tests run through.
    outage_brokers: tuple[str, ...]
    side_by_side_brokers: tuple[str, ...]


# Every `make test`: about a minute in all.
SUITE = Scale(
    kill_events=1_000,
    kill_rate=200,
    kills=3,
    kill_after=(0.3, 1.5),
    outage_seconds=10.0,
    side_by_side_events=600,
    kill_cases=(("none", "postgres"), ("none", "redis"), ("nats", "postgres")),
    outage_brokers=("nats",),
    side_by_side_brokers=("redis",),
)
# The full scale: minutes.
FULL = Scale(
    kill_events=10_000,
    kill_rate=100,
    kills=24,
    kill_after=(0.5, 4.0),
    outage_seconds=60.0,
    side_by_side_events=10_000,
    kill_cases=tuple((broker, store) for broker in ("none", "nats", "redis") for store in ("postgres", "redis")),
    outage_brokers=("nats", "redis"),
    side_by_side_brokers=("none", "nats", "redis"),
)


def scale_of(config: pytest.Config) -> Scale:
    markexpr = str(config.getoption("markexpr", default="") or "").strip()
    full = markexpr == "e2e" or os.environ.get("CATHOUSE_TEST_FULL_DURABILITY") == "1"
    return FULL if full else SUITE


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test's brokers (and the kill test's stores) at the run's scale. The Redis store only
    when there is a Redis to test it on."""
    scale = scale_of(metafunc.config)
    name = metafunc.function.__name__
    if name == "test_relays_and_consumers_killed_at_random_lose_nothing_and_apply_nothing_twice":
        cases = [(broker, store) for broker, store in scale.kill_cases if store == "postgres" or REDIS_URL]
        metafunc.parametrize(("kind", "store_kind"), cases)
    elif name == "test_a_broker_outage_queues_events_in_the_outbox_and_they_drain_into_the_read_model_after":
        metafunc.parametrize("kind", scale.outage_brokers)
    elif name == "test_two_relays_and_two_consumers_at_once_keep_the_read_model_exact_and_in_order":
        metafunc.parametrize("kind", scale.side_by_side_brokers)


@pytest.fixture(scope="module")
def scale(request: pytest.FixtureRequest) -> Scale:
    return scale_of(request.config)


Figures = Callable[[str], None]


@pytest.fixture
def figures(capsys: pytest.CaptureFixture[str]) -> Figures:
    """Print a test's figures (events, kills, drain time) even when pytest captures the output."""

    def show(line: str) -> None:
        with capsys.disabled():
            print(f"\n{line}")

    return show


# --- a history whose read model is known ------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    aggregate_type: str
    aggregate_id: str
    event_type: str
    payload: dict[str, Any]


# The installation lifecycle, as the installation service moves through it.
NEXT_STATUS: dict[str, tuple[str, ...]] = {
    "pending": ("provisioning",),
    "provisioning": ("active", "active", "failed"),
    "failed": ("provisioning",),
    "active": ("suspended", "uninstalling"),
    "suspended": ("active", "uninstalling"),
    "uninstalling": ("uninstalled",),
    "uninstalled": (),
}


@dataclass
class _Installation:
    cat_id: uuid.UUID
    user_id: uuid.UUID
    status: str = "pending"
    activated: bool = False


@dataclass
class Marketplace:
    """A seeded history of ``total`` events over a few hundred aggregates, and the figures the read
    model must show once each was applied exactly once, in order."""

    rng: random.Random
    total: int
    events: list[Planned] = field(default_factory=list)
    publishers: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    reviews: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, int]] = field(default_factory=dict)
    installations: dict[uuid.UUID, _Installation] = field(default_factory=dict)
    users: int = 0

    def __post_init__(self) -> None:
        # About 200 aggregates however long the history (300 for the full scale's 10,000 events).
        limits = {"cats": 30, "installs": max(150, self.total // 50), "users": min(50, self.total // 50)}
        while len(self.events) < self.total:
            moves = [
                (self._new_cat, 3 if len(self.publishers) < limits["cats"] else 0),
                (self._new_user, 1 if self.users < limits["users"] else 0),
                (self._install, 3 if self.publishers and len(self.installations) < limits["installs"] else 0),
                (self._move, 8 if self.installations else 0),
                (self._review, 3 if self.publishers else 0),
                (self._edit_review, 2 if self.reviews else 0),
                (self._new_version, 1 if self.publishers else 0),
            ]
            moves = [(move, weight) for move, weight in moves if weight]
            self.rng.choices([m for m, _ in moves], [w for _, w in moves])[0]()

    @property
    def aggregates(self) -> int:
        return len({(e.aggregate_type, e.aggregate_id) for e in self.events})

    def _add(self, aggregate_type: str, aggregate_id: uuid.UUID, event_type: str, **payload: Any) -> None:
        body = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in payload.items()}
        self.events.append(Planned(aggregate_type, str(aggregate_id), event_type, body))

    def _cat(self) -> uuid.UUID:
        return self.rng.choice(list(self.publishers))

    def _new_cat(self) -> None:
        cat_id, publisher = uuid.uuid4(), uuid.uuid4()
        self.publishers[cat_id], self.versions[cat_id] = publisher, 0
        self._add(
            "cat", cat_id, cats.CatPublished.type, cat_id=cat_id, slug=f"cat-{cat_id.hex[:8]}", name="Points",
            category="points", publisher_id=publisher, version="1.0.0",
        )  # fmt: skip

    def _new_version(self) -> None:
        cat_id = self._cat()
        self.versions[cat_id] += 1
        version = f"1.{self.versions[cat_id]}.0"
        self._add(
            "cat", cat_id, cats.CatVersionPublished.type, cat_id=cat_id, slug=f"cat-{cat_id.hex[:8]}", version=version,
            permissions=["points:read"], current=True,
        )  # fmt: skip

    def _review(self) -> None:
        cat_id, review_id, user_id, rating = self._cat(), uuid.uuid4(), uuid.uuid4(), self.rng.randint(1, 5)
        self.reviews[review_id] = (cat_id, user_id, rating)
        self._add(
            "cat", cat_id, cats.ReviewCreated.type, cat_id=cat_id, slug=f"cat-{cat_id.hex[:8]}", review_id=review_id,
            user_id=user_id, rating=rating, verified=False,
        )  # fmt: skip

    def _edit_review(self) -> None:
        review_id = self.rng.choice(list(self.reviews))
        cat_id, user_id, previous = self.reviews[review_id]
        rating = self.rng.randint(1, 5)
        self.reviews[review_id] = (cat_id, user_id, rating)
        self._add(
            "cat", cat_id, cats.ReviewUpdated.type, cat_id=cat_id, slug=f"cat-{cat_id.hex[:8]}", review_id=review_id,
            user_id=user_id, rating=rating, previous_rating=previous,
        )  # fmt: skip

    def _new_user(self) -> None:
        user_id = uuid.uuid4()
        self.users += 1
        self._add("user", user_id, users.UserRegistered.type, user_id=user_id, display_name=f"User {self.users}")

    def _install(self) -> None:
        installation_id, cat_id, user_id = uuid.uuid4(), self._cat(), uuid.uuid4()
        self.installations[installation_id] = _Installation(cat_id, user_id)
        self._add(
            "installation", installation_id, installs.InstallationCreated.type, installation_id=installation_id,
            user_id=user_id, cat_id=cat_id, version="1.0.0", name="Main", permissions=["points:read"],
        )  # fmt: skip

    def _move(self) -> None:
        movable = [i for i, state in self.installations.items() if NEXT_STATUS[state.status]]
        if not movable:
            self._review()
            return
        installation_id = self.rng.choice(movable)
        state = self.installations[installation_id]
        before, state.status = state.status, self.rng.choice(NEXT_STATUS[state.status])
        state.activated = state.activated or state.status == "active"
        self._add(
            "installation", installation_id, installs.InstallationStatusChanged.type, installation_id=installation_id,
            user_id=state.user_id, cat_id=state.cat_id, version="1.0.0", reason=None, by=state.user_id,
            **{"from": before, "to": state.status},
        )  # fmt: skip

    def platform_counters(self) -> dict[str, int]:
        return {
            "cats_published": len(self.publishers),
            "installations_total": sum(i.activated for i in self.installations.values()),
            "installations_active": sum(i.status == "active" for i in self.installations.values()),
            "users_registered": self.users,
            "reviews": len(self.reviews),
            "events_applied": len(self.events),
        }

    def cat_counters(self) -> dict[str, dict[str, int]]:
        """Every cat's non-zero counters."""
        found: dict[str, Counter[str]] = {str(cat_id): Counter() for cat_id in self.publishers}
        for i in self.installations.values():
            found[str(i.cat_id)].update(installs_total=int(i.activated), installs_active=int(i.status == "active"))
        for cat_id, _, rating in self.reviews.values():
            found[str(cat_id)].update({"rating_count": 1, "rating_sum": rating, f"rating_{rating}": 1})
        return {cat_id: {k: v for k, v in counts.items() if v} for cat_id, counts in found.items() if +counts}


class Writer:
    """The services' side: commits planned events in transactions of 1 to 20, in order."""

    def __init__(self, engine: AsyncEngine, rng: random.Random) -> None:
        self.sessions = sessionmaker(engine)
        self.rng = rng

    async def write(self, events: list[Planned], *, rate: float | None = None) -> None:
        """All of ``events``; at about ``rate`` events a second when given, else as fast as it can."""
        start, done = time.monotonic(), 0
        while done < len(events):
            batch = events[done : done + self.rng.randint(1, 20)]
            async with self.sessions() as session, session.begin():
                for e in batch:
                    record_event(
                        session,
                        aggregate_type=e.aggregate_type,
                        aggregate_id=e.aggregate_id,
                        event_type=e.event_type,
                        payload=e.payload,
                    )
            done += len(batch)
            if rate is not None:
                await asyncio.sleep(max(0.0, start + done / rate - time.monotonic()))


# --- the relay processes ------------------------------------------------------------------------


class Relays:
    """``cathouse relay`` processes in numbered slots, each run logging to a file of its own."""

    def __init__(self, env: dict[str, str], logs: Path, slots: int) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * slots
        self.runs = 0
        self.kills = 0

    def start(self, slot: int) -> None:
        self.runs += 1
        self.procs[slot] = start_cathouse(["relay"], self.env, self.logs / f"relay-{slot}-run-{self.runs}.log")

    def start_all(self) -> None:
        for slot in range(len(self.procs)):
            self.start(slot)

    def kill(self, slot: int) -> None:
        proc = self.procs[slot]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.kills += 1

    async def listening(self, engine: AsyncEngine) -> set[int]:
        """The slots whose process LISTENs for committed events: its relay, workers and consumers are up."""
        async with engine.connect() as conn:
            ports = list(
                await conn.scalars(
                    text(
                        "SELECT client_port FROM pg_stat_activity WHERE datname = current_database()"
                        " AND application_name = 'cathouse-relay-listen'"
                    )
                )
            )
        live = [(slot, proc) for slot, proc in enumerate(self.procs) if proc is not None and proc.poll() is None]
        if any(port is None or port < 0 for port in ports):
            # Over a Unix socket (the embedded server) there is no port to tell the processes apart:
            # as many as listen, taken oldest first, since each listens once it has started.
            oldest = sorted(live, key=lambda item: started(item[1].pid))
            return {slot for slot, _ in oldest[: len(ports)]}
        found = set()
        for slot, proc in live:
            with contextlib.suppress(psutil.Error):
                if set(ports) & {s.laddr.port for s in psutil.Process(proc.pid).net_connections("tcp")}:
                    found.add(slot)
        return found

    def check(self) -> None:
        """None has died of itself."""
        for slot, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"relay {slot} exited with {proc.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                terminate_and_wait(proc)

    def lines(self) -> Iterator[dict[str, Any]]:
        for log in sorted(self.logs.glob("relay-*.log")):
            for line in log.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    parsed = json.loads(line)
                    if isinstance(parsed, dict):
                        yield parsed

    def duplicates(self) -> int:
        """Deliveries the consumer found already applied, in every run of every slot."""
        return sum(1 for line in self.lines() if line.get("message") == DUPLICATE_MESSAGE)

    def tail(self) -> str:
        warnings = [line for line in self.lines() if line.get("level") not in ("DEBUG", "INFO")]
        return "\n".join(json.dumps(line)[:2000] for line in warnings[-10:])


def relay_env(tmp_path: Path, database_url: str, broker: dict[str, str]) -> dict[str, str]:
    return cathouse_env(
        tmp_path / "data",
        {"CATHOUSE_LOG_LEVEL": "DEBUG", "CATHOUSE_EVENTS__POLL_INTERVAL": "0.2", **broker},
        database_url=database_url,
    )


def broker_settings(url: str, prefix: str, *, lease: float = 1.0) -> dict[str, str]:
    """A broker on names of the test's own; a short lease, so a killed consumer's message comes
    back within the test's patience (in production it is 30 s)."""
    return {
        "CATHOUSE_BROKER_URL": url,
        "CATHOUSE_EVENTS__BROKER_PREFIX": prefix,
        "CATHOUSE_EVENTS__BROKER_PARTITIONS": "4",
        "CATHOUSE_EVENTS__CONSUMER_LEASE": str(lease),
        "CATHOUSE_EVENTS__CONSUMER_BACKOFF": "0.05",
        "CATHOUSE_EVENTS__BROKER_MAX_BACKOFF": "0.5",
    }


@contextlib.asynccontextmanager
async def shared_broker(kind: str) -> AsyncIterator[dict[str, str]]:
    """No broker (the outbox is the queue), or the shared NATS or Redis on fresh names, deleted after."""
    if kind == "none":
        yield {}
        return
    url, prefix = url_of(kind), new_prefix()
    try:
        yield broker_settings(url, prefix)
    finally:
        await forget(kind, url, prefix)


@pytest.fixture
async def clean(committed: AsyncEngine) -> AsyncEngine:
    """An empty platform: no event and no read model left by an earlier test."""
    await truncate_all(committed)
    return committed


# --- what the read model must show ---------------------------------------------------------------


async def applied(model: ReadModel) -> int:
    return (await model.platform_counters())["events_applied"]


async def pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM events.outbox WHERE published_at IS NULL")) or 0)


async def wait_applied(model: ReadModel, count: int, relays: Relays, within: float) -> float:
    """Seconds until ``count`` events are applied (the relays must stay up meanwhile)."""
    start = time.monotonic()
    while (done := await applied(model)) < count:
        relays.check()
        if time.monotonic() - start > within:
            raise AssertionError(f"{done} of {count} events applied after {within:.0f}s:\n{relays.tail()}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def wait_relayed(engine: AsyncEngine, relays: Relays, within: float = 30.0) -> None:
    """Until the outbox has nothing left to relay. An event is applied before the relay marks it
    published, so the read model can be complete a moment before the outbox says so."""
    start = time.monotonic()
    while (left := await pending(engine)) > 0:
        relays.check()
        if time.monotonic() - start > within:
            raise AssertionError(f"{left} events still unrelayed after {within:.0f}s:\n{relays.tail()}")
        await asyncio.sleep(0.05)


def patience(market: Marketplace) -> float:
    """How long a history may take to reach the read model: a minute, and 20 events a second."""
    return 60 + len(market.events) / 20


@contextlib.asynccontextmanager
async def read_model(engine: AsyncEngine, store_kind: str) -> AsyncIterator[tuple[ReadModel, dict[str, str]]]:
    """The store the relays apply to, as the test reads it, and the settings that point them at it."""
    if store_kind == "postgres":
        yield PostgresReadModel(engine), {}
        return
    assert REDIS_URL is not None
    prefix = redis_prefix("durability")
    model = RedisReadModel.from_url(REDIS_URL, prefix=prefix, global_cap=FULL.kill_events)
    settings = {
        "CATHOUSE_REDIS_URL": REDIS_URL,
        "CATHOUSE_ACTIVITY__REDIS_PREFIX": prefix,
        # The global feed keeps every entry, so the test sees each one.
        "CATHOUSE_ACTIVITY__GLOBAL_FEED_CAP": str(FULL.kill_events),
    }
    try:
        yield model, settings
    finally:
        await model.close()
        await drop_keys(prefix)


async def assert_exact(engine: AsyncEngine, model: ReadModel, market: Marketplace) -> None:
    """Every event applied once, every figure what the history implies, every aggregate in order."""
    n = len(market.events)
    async with engine.connect() as conn:
        outbox = {
            row.id: (row.aggregate_type, row.aggregate_id, row.seq)
            for row in await conn.execute(text("SELECT id::text, aggregate_type, aggregate_id, seq FROM events.outbox"))
        }
        marked = await conn.scalar(text("SELECT count(*) FROM activity.applied_events"))
    assert (len(outbox), await pending(engine)) == (n, 0), "every event written was relayed"
    if isinstance(model, PostgresReadModel):
        assert marked == n, "every event id is in applied_events, once"
    entries = await model.page(Feed.everything(), before=None, limit=n + 1)
    assert len(entries) == len({e.event_id for e in entries}) == n, "each event made its one entry, none twice"
    assert await model.platform_counters() == market.platform_counters(), "no effect lost or applied twice"
    cats = {str(cat_id): await model.cat_counters(cat_id) for cat_id in market.publishers}
    moved = {cat: {name: v for name, v in counts.items() if v} for cat, counts in cats.items()}
    assert {cat: counts for cat, counts in moved.items() if counts} == market.cat_counters()
    orders: dict[tuple[str, str], list[int]] = defaultdict(list)
    for entry in reversed(entries):  # oldest first
        aggregate_type, aggregate_id, seq = outbox[entry.event_id]
        orders[(aggregate_type, aggregate_id)].append(seq)
    assert len(orders) == market.aggregates
    misordered = [key for key, seqs in orders.items() if seqs != sorted(seqs)]
    assert not misordered, f"{len(misordered)} aggregates' entries were applied out of order, e.g. {misordered[:3]}"


# --- the tests -----------------------------------------------------------------------------------


def started(pid: int) -> float:
    """When process ``pid`` started; one that has just died counts as the newest."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return math.inf


async def kill_at_random(
    engine: AsyncEngine, relays: Relays, rng: random.Random, *, kills: int, work: tuple[float, float]
) -> None:
    """SIGKILL each slot's process after a random ``work`` seconds of its life as a relay (from when
    it LISTENs, so a kill lands on a process at work, not on one still importing), start it again
    at once, until ``kills`` processes have died; then let them finish the work in peace."""
    deaths: dict[int, float] = {}
    while relays.kills < kills:
        relays.check()
        working = await relays.listening(engine)
        for slot in range(len(relays.procs)):
            if slot in working and slot not in deaths:
                deaths[slot] = time.monotonic() + rng.uniform(*work)
            if slot in deaths and time.monotonic() >= deaths[slot] and relays.kills < kills:
                relays.kill(slot)
                relays.start(slot)
                del deaths[slot]
        await asyncio.sleep(0.05)


async def test_relays_and_consumers_killed_at_random_lose_nothing_and_apply_nothing_twice(
    clean: AsyncEngine, database_url: str, tmp_path: Path, scale: Scale, figures: Figures, kind: str, store_kind: str
) -> None:
    rng = random.Random(7)  # noqa: S311 - a reproducible history and kill schedule, not a secret
    market = Marketplace(rng, scale.kill_events)
    async with shared_broker(kind) as broker, read_model(clean, store_kind) as (model, store):
        relays = Relays(relay_env(tmp_path, database_url, {**broker, **store}), tmp_path, slots=2)
        relays.start_all()
        chaos = asyncio.create_task(kill_at_random(clean, relays, rng, kills=scale.kills, work=scale.kill_after))
        start = time.monotonic()
        try:
            # Steadily, so the processes die while there is work whatever the machine's speed.
            await Writer(clean, rng).write(market.events, rate=scale.kill_rate)
            await wait_applied(model, len(market.events), relays, within=patience(market))
            await wait_relayed(clean, relays)
            elapsed = time.monotonic() - start
        finally:
            chaos.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chaos
            relays.stop()
        figures(
            f"kill test ({kind}, {store_kind} store): {len(market.events)} events over {market.aggregates} "
            f"aggregates, {relays.kills} SIGKILLs, {relays.duplicates()} duplicate deliveries absorbed, {elapsed:.1f} s"
        )
        await assert_exact(clean, model, market)
    assert relays.kills >= 2, "processes were killed while there was work"


async def test_two_relays_and_two_consumers_at_once_keep_the_read_model_exact_and_in_order(
    clean: AsyncEngine, database_url: str, tmp_path: Path, scale: Scale, figures: Figures, kind: str
) -> None:
    rng = random.Random(11)  # noqa: S311 - a reproducible history
    market = Marketplace(rng, scale.side_by_side_events)
    model = PostgresReadModel(clean)
    async with shared_broker(kind) as broker:
        relays = Relays(relay_env(tmp_path, database_url, broker), tmp_path, slots=2)
        relays.start_all()
        try:
            start = time.monotonic()
            await Writer(clean, rng).write(market.events)
            await wait_applied(model, len(market.events), relays, within=patience(market))
            await wait_relayed(clean, relays)
            elapsed = time.monotonic() - start
        finally:
            relays.stop()
    figures(f"two relays ({kind}): {len(market.events)} events, {relays.duplicates()} duplicates, {elapsed:.1f} s")
    await assert_exact(clean, model, market)


def private_broker(kind: str, port: int, store: Path) -> tuple[str, list[str]]:
    """A broker of the test's own that it can stop and start again on the same port and data.

    Redis keeps its streams in an append-only file: the adapter's durability needs it (without it,
    what was published but not yet consumed would go with the server).
    """
    if kind == "nats":
        if NATS_SERVER is None:
            pytest.skip("nats-server is not installed")
        return f"nats://127.0.0.1:{port}", [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
    return f"redis://127.0.0.1:{port}/0", [*argv, "--dir", str(store)]


async def test_a_broker_outage_queues_events_in_the_outbox_and_they_drain_into_the_read_model_after(
    clean: AsyncEngine, database_url: str, tmp_path: Path, scale: Scale, figures: Figures, kind: str
) -> None:
    rng = random.Random(5)  # noqa: S311 - a reproducible history
    during = round(20 * scale.outage_seconds)  # 20 events a second while the broker is away
    market = Marketplace(rng, 200 + during)
    port, store = free_port(), tmp_path / "broker"
    store.mkdir()
    url, argv = private_broker(kind, port, store)
    # The platform's own settings otherwise: the drain time is what a deployment would see.
    env = relay_env(
        tmp_path, database_url, {"CATHOUSE_BROKER_URL": url, "CATHOUSE_EVENTS__BROKER_PREFIX": new_prefix()}
    )
    relays = Relays(env, tmp_path, slots=1)
    writer, model = Writer(clean, rng), PostgresReadModel(clean)
    try:
        with server(argv, port) as broker:
            relays.start_all()
            await writer.write(market.events[:200])
            await wait_applied(model, 200, relays, within=60)
            broker.terminate()
            broker.wait()

            down = time.monotonic()
            await writer.write(market.events[200:], rate=20)
            await asyncio.sleep(max(0.0, down + scale.outage_seconds - time.monotonic()))
            waiting, done = await pending(clean), await applied(model)
            assert (waiting, done) == (during, 200), "every event written meanwhile waits in the outbox"
            relays.check()

            with server(argv, port):
                back = time.monotonic()
                drain = await wait_applied(model, len(market.events), relays, within=120)
                await wait_relayed(clean, relays)
                assert await pending(clean) == 0
        away = back - down
    finally:
        relays.stop()
    figures(
        f"{kind} outage: {away:.1f} s away, {during} events queued in the outbox, "
        f"drained into the read model {drain:.1f} s after the broker came back"
    )
    await assert_exact(clean, model, market)

"""The proxy's rate limits, in memory and in Redis: exact counts, atomicity, a rolling window, and
what happens while Redis is away."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from loguru import logger
from prometheus_client import REGISTRY

from cathouse.platform.settings import Environment, Settings
from cathouse.proxy.ratelimit import (
    Decision,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    rate_limiter,
)
from tests.proxy.conftest import PrivateRedis

REDIS_URL = os.environ.get("CATHOUSE_REDIS_URL")
STORES = ["memory", pytest.param("redis", marks=pytest.mark.skipif(not REDIS_URL, reason="CATHOUSE_REDIS_URL unset"))]
METRIC = "cathouse_proxy_ratelimit_store_errors_total"

MakeLimiter = Callable[..., RateLimiter]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unique_prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
async def make_limiter() -> AsyncIterator[MakeLimiter]:
    """``make_limiter(store, window=..., clock=...)``: closed after the test; Redis keys unique to it."""
    made: list[RateLimiter] = []

    def make(store: str, *, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> RateLimiter:
        limiter: RateLimiter
        if store == "memory":
            limiter = MemoryRateLimiter(window, clock)
        else:
            assert REDIS_URL is not None
            limiter = RedisRateLimiter(REDIS_URL, window=window, prefix=unique_prefix())
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


def store_errors() -> float:
    return REGISTRY.get_sample_value(METRIC) or 0.0


@pytest.mark.parametrize("store", STORES)
async def test_sequential_hits_admit_exactly_the_limit_and_count_down(store: str, make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(store)
    decisions = [await limiter.hit("inst-a", 100, "user-1", 1000) for _ in range(150)]

    admitted = [d for d in decisions if d.allowed]
    refused = [d for d in decisions if not d.allowed]
    assert len(admitted) == 100
    assert len(refused) == 50
    assert decisions[:100] == admitted  # refusals only once the limit is spent
    assert [d.remaining for d in admitted] == list(range(99, -1, -1))
    for d in decisions:
        assert d.limit == 100
        assert 0 < d.reset <= 60
        assert 1 <= d.retry_after <= 60
        assert not d.degraded
    assert {d.refused_by for d in refused} == {"installation"}
    assert {d.remaining for d in refused} == {0}


@pytest.mark.parametrize("store", STORES)
async def test_concurrent_hits_admit_exactly_the_limit(store: str, make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(store)
    decisions = await asyncio.gather(*(limiter.hit("inst-a", 100, "user-1", 1000) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 100
    assert not any(d.degraded for d in decisions)


@pytest.mark.parametrize("store", STORES)
async def test_the_user_limit_spans_the_users_installations(store: str, make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(store)
    decisions = [await limiter.hit(f"inst-{i % 2}", 8, "user-1", 10) for i in range(30)]
    assert sum(d.allowed for d in decisions) == 10
    assert {d.refused_by for d in decisions if not d.allowed} == {"user"}
    assert all(d.limit == 10 for d in decisions if not d.allowed)
    # Another user has a budget of their own.
    assert (await limiter.hit("inst-0", 8, "user-2", 10)).allowed


@pytest.mark.parametrize("store", STORES)
async def test_a_refusal_by_the_installation_spends_nothing_of_the_user(store: str, make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(store)
    first = [await limiter.hit("inst-a", 3, "user-1", 10) for _ in range(10)]
    assert [d.allowed for d in first] == [True] * 3 + [False] * 7
    assert {d.refused_by for d in first[3:]} == {"installation"}
    # Had those 7 refusals counted against the user, nothing would be left for inst-b.
    second = [await limiter.hit("inst-b", 100, "user-1", 10) for _ in range(10)]
    assert [d.allowed for d in second] == [True] * 7 + [False] * 3
    assert {d.refused_by for d in second[7:]} == {"user"}


@pytest.mark.parametrize("store", STORES)
async def test_a_refusal_by_the_user_spends_nothing_of_the_installation(store: str, make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(store)
    assert all([(await limiter.hit("inst-b", 100, "user-1", 10)).allowed for _ in range(10)])
    refused = [await limiter.hit("inst-a", 5, "user-1", 10) for _ in range(5)]
    assert {(d.allowed, d.refused_by) for d in refused} == {(False, "user")}
    # With the user's limit raised, inst-a still has all 5 of its slots.
    later = [await limiter.hit("inst-a", 5, "user-1", 1000) for _ in range(7)]
    assert [d.allowed for d in later] == [True] * 5 + [False] * 2
    assert {d.refused_by for d in later[5:]} == {"installation"}


@pytest.mark.parametrize("store", STORES)
async def test_headers_name_the_tighter_limit(store: str, make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(store)
    d = await limiter.hit("inst-a", 50, "user-1", 10)
    assert (d.limit, d.remaining) == (10, 9)
    d = await limiter.hit("inst-a", 5, "user-1", 10)
    assert (d.limit, d.remaining) == (5, 3)


# (time in windows, hits, how many a sliding window of 5 admits). Bursts at the end of window 0 and
# the start of window 1: a fixed window, wherever its boundaries fall, admits more somewhere.
SCHEDULE = [
    (0.15, 1, 1),
    (0.30, 1, 1),
    (0.75, 5, 3),
    (1.02, 5, 0),
    (1.20, 3, 1),
    (1.45, 3, 1),
    (1.85, 4, 3),
    (2.30, 2, 1),
]
ROLLING_LIMIT = 5


async def test_the_reset_never_exceeds_the_window_whatever_the_clock_reads(make_limiter: MakeLimiter) -> None:
    # At this reading, now + 60 - now is 60.00000000000023 in floating point.
    limiter = make_limiter("memory", clock=lambda: 1988.8887547298007)
    admitted = await limiter.hit("inst-a", 1, "user-1", 1000)
    refused = await limiter.hit("inst-a", 1, "user-1", 1000)
    assert (admitted.allowed, refused.allowed) == (True, False)
    assert admitted.reset == refused.reset == 60.0
    assert refused.retry_after == 60


@pytest.mark.parametrize("store", STORES)
async def test_the_window_rolls_rather_than_resets(store: str, make_limiter: MakeLimiter) -> None:
    clock = FakeClock()
    if store == "memory":
        window = 1.0
        limiter = make_limiter(store, window=window, clock=clock)
        start = clock.now

        async def wait_until(t: float) -> None:
            clock.now = start + t

        now: Callable[[], float] = clock
    else:
        # Real time, as Redis keeps it: margins of at least 0.1 window against a late wake-up.
        window = 2.0
        limiter = make_limiter(store, window=window)
        await limiter.hit("warm-up", 1, "warm-up", 1)  # the connection, before the clock starts
        start = time.monotonic()

        async def wait_until(t: float) -> None:
            await asyncio.sleep(max(0.0, start + t - time.monotonic()))

        now = time.monotonic

    sent: list[float] = []
    received: list[float] = []
    for at, hits, expected in SCHEDULE:
        await wait_until(at * window)
        before = now()
        decisions = await asyncio.gather(*(limiter.hit("inst-a", ROLLING_LIMIT, "user-1", 100) for _ in range(hits)))
        after = now()
        assert sum(d.allowed for d in decisions) == expected, f"at {at} windows"
        sent += [before] * expected
        received += [after] * expected
        for d in decisions:
            assert 0 < d.reset <= window
    # No span of one window holds more than the limit: the (i+limit)-th admission came a whole
    # window after the i-th, even taking the latest it could have been decided against the earliest.
    for i in range(len(sent) - ROLLING_LIMIT):
        assert received[i + ROLLING_LIMIT] - sent[i] >= window


@pytest.mark.parametrize("store", STORES)
async def test_a_refusal_says_when_a_slot_frees_up(store: str, make_limiter: MakeLimiter) -> None:
    clock = FakeClock()
    limiter = make_limiter(store, window=60.0, clock=clock)
    await limiter.hit("inst-a", 2, "user-1", 100)
    clock.now += 20
    await limiter.hit("inst-a", 2, "user-1", 100)
    refused = await limiter.hit("inst-a", 2, "user-1", 100)
    assert not refused.allowed
    if store == "memory":
        assert refused.reset == pytest.approx(40.0)
        assert refused.retry_after == 40
    else:  # no fake clock for Redis: the first entry is barely older than the second
        assert 59 < refused.reset <= 60


async def test_the_memory_limiter_forgets_idle_keys() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(window=1.0, clock=clock)
    for i in range(100):
        await limiter.hit(f"inst-{i}", 5, f"user-{i}", 5)
    clock.now += 5
    await limiter.hit("inst-x", 5, "user-x", 5)
    assert len(limiter._logs) == 2


def test_the_store_follows_the_settings() -> None:
    without = Settings(_env_file=None, env=Environment.TEST, redis_url=None)
    assert isinstance(rate_limiter(without), MemoryRateLimiter)
    with_redis = Settings(
        _env_file=None,
        env=Environment.TEST,
        redis_url="redis://127.0.0.1:1/0",  # type: ignore[arg-type]
        proxy={"rate_limit_fail_closed": True},  # type: ignore[arg-type]
    )
    limiter = rate_limiter(with_redis, window=5.0)
    assert isinstance(limiter, RedisRateLimiter)
    assert limiter._fail_closed


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert Decision(False, 5, 0, 0.001, "user").retry_after == 1
    assert Decision(False, 5, 0, 1.2, "user").retry_after == 2
    assert Decision(False, 5, 0, 3.0, "user").retry_after == 3


# --- several processes sharing Redis ---------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from cathouse.proxy.ratelimit import RedisRateLimiter

    async def main(url, prefix, hits, start):
        limiter = RedisRateLimiter(url, prefix=prefix)
        await limiter.hit("warm-up", 1, "warm-up", 1)  # connect before the start line
        await asyncio.sleep(max(0.0, start - time.time()))
        decisions = await asyncio.gather(*(limiter.hit("inst-a", 100, "user-1", 1000) for _ in range(hits)))
        await limiter.close()
        print(sum(d.allowed for d in decisions), sum(d.degraded for d in decisions))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    """
)


@pytest.mark.skipif(not REDIS_URL, reason="CATHOUSE_REDIS_URL unset")
def test_two_processes_share_one_limit() -> None:
    assert REDIS_URL is not None
    prefix = unique_prefix()
    start = time.time() + 2.0  # both started and connected by then
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, REDIS_URL, prefix, str(hits), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for hits in (75, 75)
    ]
    admitted = 0
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        allowed, degraded = map(int, out.split())
        assert degraded == 0
        admitted += allowed
    assert admitted == 100  # and so 50 refusals


# --- a Redis that goes away --------------------------------------------------------------------


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message)),
        level="WARNING",
        filter="cathouse.proxy.ratelimit",
        format="{message}",
    )
    yield lines
    logger.remove(sink)


async def timed(call: Awaitable[Decision]) -> Decision:
    started = time.perf_counter()
    decision = await call
    assert time.perf_counter() - started < 0.5
    return decision


async def enforcing_again(limiter: RedisRateLimiter, deadline: float = 10.0) -> Decision:
    """Hit an untouched key until the store answers again."""
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        decision = await timed(limiter.hit("inst-probe", 1000, "user-probe", 1000))
        if not decision.degraded:
            return decision
        await asyncio.sleep(0.05)
    raise AssertionError("the limiter did not go back to Redis")


async def test_a_dead_redis_fails_open_counts_it_and_recovers(
    private_redis: PrivateRedis, warnings_logged: list[str]
) -> None:
    limiter = RedisRateLimiter(private_redis.url, retry_interval=0.3)
    try:
        assert [(await limiter.hit("inst-a", 5, "user-1", 100)).allowed for _ in range(3)] == [True] * 3
        private_redis.kill()

        errors_before = store_errors()
        during = []
        for _ in range(30):  # over more than one retry interval
            during.append(await timed(limiter.hit("inst-a", 5, "user-1", 100)))
            await asyncio.sleep(0.02)
        assert all(d.allowed and d.degraded and d.refused_by is None for d in during)
        assert store_errors() - errors_before == 30
        assert 1 <= len(warnings_logged) <= 2, warnings_logged  # not one line per request

        await asyncio.to_thread(private_redis.start)  # empty again: nothing was saved
        await enforcing_again(limiter)
        after = [await timed(limiter.hit("inst-a", 5, "user-1", 100)) for _ in range(7)]
        assert [d.allowed for d in after] == [True] * 5 + [False] * 2
        assert not any(d.degraded for d in after)
    finally:
        await limiter.close()


async def test_a_dead_redis_fails_closed_when_told_to(private_redis: PrivateRedis) -> None:
    limiter = RedisRateLimiter(private_redis.url, fail_closed=True, retry_interval=0.3)
    try:
        assert (await limiter.hit("inst-a", 5, "user-1", 100)).allowed
        private_redis.kill()

        errors_before = store_errors()
        during = [await timed(limiter.hit("inst-a", 5, "user-1", 100)) for _ in range(10)]
        assert all(not d.allowed and d.degraded and d.refused_by is None for d in during)
        assert all(d.retry_after >= 1 for d in during)
        assert store_errors() - errors_before == 10

        await asyncio.to_thread(private_redis.start)
        assert (await enforcing_again(limiter)).allowed
        assert (await limiter.hit("inst-a", 5, "user-1", 100)).allowed
    finally:
        await limiter.close()


async def test_a_hung_redis_costs_at_most_the_timeout(private_redis: PrivateRedis) -> None:
    limiter = RedisRateLimiter(private_redis.url, timeout=0.25, retry_interval=0.3)
    try:
        assert (await limiter.hit("inst-a", 5, "user-1", 100)).allowed
        private_redis.pause(True)  # accepts connections, answers nothing
        during = []
        for _ in range(3):
            during += await asyncio.gather(*(timed(limiter.hit("inst-a", 5, "user-1", 100)) for _ in range(5)))
            await asyncio.sleep(0.2)
        assert all(d.allowed and d.degraded for d in during)

        private_redis.pause(False)
        await enforcing_again(limiter)
        # The count made before the pause is still there; the hits that timed out may have been
        # counted too, as Redis ran them on waking: never more admitted than the limit.
        after = [await limiter.hit("inst-a", 5, "user-1", 100) for _ in range(5)]
        assert not any(d.degraded for d in after)
        assert sum(d.allowed for d in after) <= 4
        assert not after[-1].allowed
    finally:
        await limiter.close()


async def test_redis_restarting_between_calls_costs_no_degraded_decision(private_redis: PrivateRedis) -> None:
    limiter = RedisRateLimiter(private_redis.url)
    try:
        assert (await limiter.hit("inst-a", 5, "user-1", 100)).allowed
        private_redis.kill()
        await asyncio.to_thread(private_redis.start)
        await asyncio.sleep(0.05)  # the client has seen its connection close
        # A new connection, a server that has never seen the script: NOSCRIPT, then EVAL.
        decision = await limiter.hit("inst-a", 5, "user-1", 100)
        assert decision.allowed
        assert not decision.degraded
        assert decision.remaining == 4
    finally:
        await limiter.close()


async def test_the_url_gives_password_and_database(stopped_redis: PrivateRedis, warnings_logged: list[str]) -> None:
    await asyncio.to_thread(stopped_redis.start, "--requirepass", "s3cret")
    base = f"127.0.0.1:{stopped_redis.port}"
    limiter = RedisRateLimiter(f"redis://:s3cret@{base}/3", prefix="auth-test:")
    wrong = RedisRateLimiter(f"redis://:wrong@{base}/3", prefix="auth-test:")
    try:
        decision = await limiter.hit("inst-a", 5, "user-1", 100)
        assert decision.allowed
        assert not decision.degraded
        cli = await asyncio.create_subprocess_exec(
            *("redis-cli", "-p", str(stopped_redis.port), "-a", "s3cret", "--no-auth-warning", "-n", "3", "keys", "*"),
            stdout=subprocess.PIPE,
        )
        keys = (await cli.communicate())[0].decode().split()
        assert sorted(keys) == ["auth-test:{user-1}:i:inst-a", "auth-test:{user-1}:u"]

        refused_auth = await wrong.hit("inst-a", 5, "user-1", 100)
        assert refused_auth.degraded
        assert any("failing open" in line for line in warnings_logged)
        assert not any("s3cret" in line or "wrong" in line for line in warnings_logged)
    finally:
        await limiter.close()
        await wrong.close()

"""The rate limiter's Redis client: the hand-written RESP client against redis-py with hiredis.

Every proxied request runs the limiter's script once (``cathouse.proxy.ratelimit``), so the
client's CPU per call is paid on every call. Two limiters run the same script on the same
Redis, in one run, with the same keys and arguments, on uvloop (as the proxy runs):

- redis-py's asyncio client with the hiredis parser (``redis[hiredis]``): ``evalsha``, then
  ``eval`` after a NOSCRIPT, the reply turned into a ``Decision`` as the platform's is: the
  reference;
- ``cathouse.proxy.ratelimit.RedisRateLimiter``: the same over ``cathouse.proxy.resp``, one
  pipelined connection.

Each is timed with one caller at a time and with ``--concurrency`` callers at once, for
``--calls`` calls, as this process's CPU time per call (what the proxy pays) and calls per
second (which also holds Redis's own time and whatever else runs on the machine). The keys
rotate over a few hundred (user, installation) pairs under a prefix of this run, deleted after.

    .venv/bin/python bench/resp.py --redis redis://127.0.0.1:6379/0 --calls 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
import uvloop
from redis.exceptions import NoScriptError
from redis.utils import HIREDIS_AVAILABLE

from cathouse.proxy.ratelimit import _SCRIPT, Decision, RedisRateLimiter, _decision

PAIRS = [(f"inst-{i % 37}", f"user-{i}") for i in range(300)]
LIMIT = 1_000_000  # every call admitted: both limiters do the whole script every time
WINDOW = 60.0
_SCRIPT_TEXT = _SCRIPT.decode()

Hit = Callable[[str, int, str, int], Awaitable[Decision]]


class RedisPyLimiter:
    """What the limiter would be on redis-py: the same script, keys and reply handling."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._sha: str | None = None
        self._window_ms = str(round(WINDOW * 1000))
        self._nonce = os.urandom(8).hex()
        self._counter = 0

    async def hit(self, installation_id: str, installation_limit: int, user_id: str, user_limit: int) -> Decision:
        tag = f"{self._prefix}{{{user_id}}}"
        self._counter += 1
        args = (
            f"{tag}:i:{installation_id}",
            f"{tag}:u",
            installation_limit,
            user_limit,
            self._window_ms,
            f"{self._nonce}{self._counter:x}",
        )
        if self._sha is None:
            self._sha = await self._client.script_load(_SCRIPT)
        try:
            reply = await self._client.evalsha(self._sha, 2, *args)
        except NoScriptError:
            reply = await self._client.eval(_SCRIPT_TEXT, 2, *args)
        return _decision(reply, installation_limit, user_limit)


async def run(hit: Hit, calls: int, concurrency: int) -> tuple[float, float]:
    """(µs of this process's CPU per call, calls per second)."""
    per_caller = calls // concurrency

    async def caller(offset: int) -> None:
        for n in range(per_caller):
            installation, user = PAIRS[(offset + n) % len(PAIRS)]
            decision = await hit(installation, LIMIT, user, LIMIT)
            if not decision.allowed or decision.degraded:
                raise SystemExit(f"unexpected decision {decision}")

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(i * 7) for i in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = per_caller * concurrency
    return cpu / done * 1e6, done / wall


async def measure(url: str, calls: int, concurrency: int) -> dict[str, dict[int, tuple[float, float]]]:
    prefix = f"cathouse:bench:{os.urandom(4).hex()}:"
    client = aioredis.Redis.from_url(url, max_connections=concurrency)
    ours = RedisRateLimiter(url, window=WINDOW, prefix=prefix + "ours:", timeout=5.0)
    theirs = RedisPyLimiter(client, prefix + "redis-py:")
    results: dict[str, dict[int, tuple[float, float]]] = {}
    try:
        for name, hit in (
            ("redis-py + hiredis (reference)", theirs.hit),
            ("cathouse.proxy.resp", ours.hit),
        ):
            results[name] = {}
            for callers in (1, concurrency):
                await run(hit, min(calls, 2_000), callers)  # warm up: connections, script cache
                results[name][callers] = await run(hit, calls, callers)
    finally:
        await ours.close()
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default=os.environ.get("CATHOUSE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if not HIREDIS_AVAILABLE:
        raise SystemExit("hiredis is not installed: `uv pip install -e '.[bench]'` (the bench extra)")

    async def reachable() -> bool:
        client = aioredis.Redis.from_url(args.redis, socket_connect_timeout=2)
        try:
            return bool(await client.ping())
        except (OSError, aioredis.RedisError):
            return False
        finally:
            await client.aclose()

    if not uvloop.run(reachable()):
        print(f"skipped: no Redis answers at {args.redis} (set --redis or CATHOUSE_REDIS_URL)")
        return
    results = uvloop.run(measure(args.redis, args.calls, args.concurrency))
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.calls} calls per phase")
    ref = next(iter(results.values()))
    print(f"{'client':<32} {'callers':>7} {'µs CPU/call':>12} {'calls/s':>9} {'CPU ÷ ref':>10} {'calls/s ÷ ref':>14}")
    for name, by_callers in results.items():
        for callers, (cpu, rate) in by_callers.items():
            ref_cpu, ref_rate = ref[callers]
            print(f"{name:<32} {callers:>7} {cpu:>12.1f} {rate:>9.0f} {cpu / ref_cpu:>10.2f} {rate / ref_rate:>14.2f}")


if __name__ == "__main__":
    main()

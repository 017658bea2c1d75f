"""The proxy's rate limits: per installation (the cat's plan) and per user (across installations).

Both limits are sliding logs: a request is admitted when fewer than ``limit`` requests were
admitted in the last ``window`` seconds, so no boundary admits twice the limit. Checking and
counting both is one atomic step: a request refused by one limit consumes nothing of the other.

Why not ``limits`` (which the platform uses for logins): its moving window runs one Lua call
per key, so two limits are two round trips and not atomic together; hitting the installation
and then being refused by the user would spend an installation slot, and ``test`` before
``hit`` races. It stamps entries with each process's ``time.time()``, so several hosts must
agree on the clock, and ``hit`` answers only a bool: the numbers for ``RateLimit-*`` headers
cost another round trip: two ``hit`` calls a request, each its own round trip, where the
whole proxied request has a small CPU budget (bench/proxy.py measures the proxy's CPU per call).

So one Lua script (``_SCRIPT``) does the work in Redis: a sorted set per key (score: Redis
``TIME`` in µs, so every proxy process agrees; member: unique per call), both keys trimmed and
checked, both counted only if both admit, ``PEXPIRE`` to drop idle keys. One round trip, by
EVALSHA (EVAL after a NOSCRIPT, which also caches the script).

The script goes to Redis over a small RESP client of our own (:mod:`cathouse.proxy.resp`),
which costs a fraction of a library's CPU per call.

When Redis cannot answer within ``timeout``, the decision is made without it (allowed when
failing open, refused when failing closed, ``degraded=True`` either way), counted in
``cathouse_proxy_ratelimit_store_errors_total`` and logged at most every ``_LOG_INTERVAL``
seconds. Reconnection is tried at most every ``retry_interval`` seconds, by one request while
the others decide without waiting; enforcement resumes as soon as one succeeds. A command that
timed out may still run when a stalled Redis wakes: that hit is counted though it was decided
without the store, which errs towards refusing.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from loguru import logger
from prometheus_client import Counter

from cathouse.platform.settings import Settings
from cathouse.proxy.resp import Connection, ReplyError, command, connect

STORE_ERRORS = Counter(
    "cathouse_proxy_ratelimit_store_errors_total",
    "Rate-limit decisions made without the store (Redis unreachable, slow or failing): "
    "let through when failing open, refused when failing closed.",
)

_LOG_INTERVAL = 10.0
INSTALLATION, USER = "installation", "user"
_LIMITS = (INSTALLATION, USER)


@dataclass(frozen=True, slots=True)
class Decision:
    """One request's answer, with the numbers for the ``RateLimit-*`` and ``Retry-After`` headers."""

    allowed: bool
    limit: int
    remaining: int
    reset: float
    refused_by: str | None
    degraded: bool = False

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset))


class RateLimiter(Protocol):
    async def hit(self, installation_id: str, installation_limit: int, user_id: str, user_limit: int) -> Decision: ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """The same sliding logs in one process: nothing is awaited between the check and the count."""

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        # (user, installation) and (user, None): keyed as in Redis, so both behave alike.
        self._logs: dict[tuple[str, str | None], deque[float]] = {}
        self._next_sweep = clock() + window

    async def hit(self, installation_id: str, installation_limit: int, user_id: str, user_limit: int) -> Decision:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        logs = (self._log((user_id, installation_id), now), self._log((user_id, None), now))
        limits = (installation_limit, user_limit)
        refused, wait = -1, 0.0
        for i, log in enumerate(logs):
            if len(log) >= limits[i]:
                # The window less the oldest hit's age: never above the window (log[0] + window - now
                # can round to just over it on a large clock).
                w = self._window - (now - log[0]) if log else self._window
                if refused < 0 or w > wait:
                    refused, wait = i, w
        if refused >= 0:
            return Decision(False, limits[refused], 0, wait, _LIMITS[refused])
        for log in logs:
            log.append(now)
        tight = 1 if limits[1] - len(logs[1]) < limits[0] - len(logs[0]) else 0
        log = logs[tight]
        return Decision(True, limits[tight], limits[tight] - len(log), self._window - (now - log[0]), None)

    async def close(self) -> None:
        self._logs.clear()

    def _log(self, key: tuple[str, str | None], now: float) -> deque[float]:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = deque()
        floor = now - self._window
        while log and log[0] <= floor:
            log.popleft()
        return log

    def _sweep(self, now: float) -> None:
        # Keys nobody asks about again would otherwise stay forever.
        floor = now - self._window
        for key in [k for k, log in self._logs.items() if not log or log[-1] <= floor]:
            del self._logs[key]
        self._next_sweep = now + self._window


# KEYS: the installation's log, the user's log. ARGV: their limits, the window (ms), a member
# unique to this call. Returns {admitted, which limit (1 | 2), remaining, ms until a slot frees}:
# the refusing limit (the longer wait when both refuse), or else the one with less left.
_SCRIPT = b"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[3]) * 1000
local limits = {tonumber(ARGV[1]), tonumber(ARGV[2])}
local counts = {}
local refused, wait = 0, 0
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  counts[i] = redis.call('ZCARD', KEYS[i])
  if counts[i] >= limits[i] then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local w = window
    if oldest[2] then w = tonumber(oldest[2]) + window - now end
    if refused == 0 or w > wait then refused, wait = i, w end
  end
end
if refused > 0 then
  return {0, refused, 0, math.ceil(wait / 1000)}
end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
local tight = 1
if limits[2] - counts[2] < limits[1] - counts[1] then tight = 2 end
local w = window
if counts[tight] > 0 then
  local oldest = redis.call('ZRANGE', KEYS[tight], 0, 0, 'WITHSCORES')
  w = tonumber(oldest[2]) + window - now
end
return {1, tight, limits[tight] - counts[tight] - 1, math.ceil(w / 1000)}
"""
_SHA = hashlib.sha1(_SCRIPT, usedforsecurity=False).hexdigest().encode()


class _Skipped(Exception):
    """The store is known to be down and not due for another try."""


class RedisRateLimiter:
    """The sliding logs in Redis, shared by every proxy process."""

    def __init__(
        self,
        url: str,
        *,
        window: float = 60.0,
        fail_closed: bool = False,
        timeout: float = 0.25,
        retry_interval: float = 1.0,
        prefix: str = "cathouse:proxy:rl:",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
        self._parts = parts
        self._window = window
        self._fail_closed = fail_closed
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._prefix = prefix
        self._window_ms = b"%d" % max(1, round(window * 1000))
        self._window_bulk = _bulk(self._window_ms)
        # Each (installation, user) pair's two counter keys, in RESP, spelled once.
        self._keys: dict[tuple[str, str], bytes] = {}
        self._evalsha_head = command(b"EVALSHA", _SHA, b"2", more=6)
        self._eval_head = command(b"EVAL", _SCRIPT, b"2", more=6)
        # Members must be unique across every process sharing the store.
        self._nonce = os.urandom(8).hex().encode()
        self._counter = 0
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()
        self._down = False
        self._retry_at = 0.0
        self._next_log = 0.0
        self._unlogged = 0
        self._outage_decisions = 0
        self._last_error = ""

    async def hit(self, installation_id: str, installation_limit: int, user_id: str, user_limit: int) -> Decision:
        keys = self._keys.get((installation_id, user_id))
        if keys is None:
            # The user id as a hash tag puts both keys in one Redis Cluster slot, as a script needs.
            tag = f"{self._prefix}{{{user_id}}}"
            keys = b"".join(_bulk(key.encode()) for key in (f"{tag}:i:{installation_id}", f"{tag}:u"))
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            self._keys[(installation_id, user_id)] = keys
        self._counter += 1
        member = b"%s%x" % (self._nonce, self._counter)
        body = b"".join(
            (keys, _bulk(b"%d" % installation_limit), _bulk(b"%d" % user_limit), self._window_bulk, _bulk(member))
        )
        conn = self._conn
        try:
            if conn is None or conn.closed:
                conn = await self._connect()
            try:
                reply = await conn.call(self._evalsha_head + body)
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                reply = await conn.call(self._eval_head + body)
            decision = _decision(reply, installation_limit, user_limit)
        except _Skipped:
            return self._degraded(installation_limit, user_limit)
        except (OSError, ReplyError) as exc:
            self._failed(exc, conn)
            return self._degraded(installation_limit, user_limit)
        if self._down:
            self._recovered()
        return decision

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _connect(self) -> Connection:
        # While down, one request at a time probes; the others decide at once rather than wait.
        if self._down and (time.monotonic() < self._retry_at or self._lock.locked()):
            raise _Skipped
        async with self._lock:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            if self._down and time.monotonic() < self._retry_at:
                raise _Skipped
            self._conn = await connect(self._parts, self._timeout)
            return self._conn

    def _failed(self, exc: BaseException, conn: Connection | None) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}"
        if conn is not self._conn and self._conn is not None and not self._conn.closed:
            return  # the failure was an old connection's; another one is already serving
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        now = time.monotonic()
        self._retry_at = now + self._retry_interval
        if not self._down:
            self._down = True
            self._next_log = now
            self._outage_decisions = 0

    def _degraded(self, installation_limit: int, user_limit: int) -> Decision:
        STORE_ERRORS.inc()
        self._unlogged += 1
        self._outage_decisions += 1
        now = time.monotonic()
        if now >= self._next_log:
            logger.warning(
                "rate-limit store unavailable; failing " + ("closed" if self._fail_closed else "open"),
                error=self._last_error,
                decisions=self._unlogged,
            )
            self._next_log = now + _LOG_INTERVAL
            self._unlogged = 0
        limit = min(installation_limit, user_limit)
        if self._fail_closed:
            return Decision(False, limit, 0, self._retry_interval, None, degraded=True)
        # Nothing is known of the count: report the limit untouched rather than throttle clients.
        return Decision(True, limit, limit, self._window, None, degraded=True)

    def _recovered(self) -> None:
        logger.info("rate-limit store is back; enforcing again", decisions_without_it=self._outage_decisions)
        self._down = False
        self._unlogged = 0


_KEYS_KEPT = 10_000


def _bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


def _decision(reply: object, installation_limit: int, user_limit: int) -> Decision:
    # Checked by hand: a sequence pattern in a match statement costs several times as much.
    if type(reply) is list and len(reply) == 4:
        admitted, which, remaining, reset_ms = reply
        if type(admitted) is int and type(remaining) is int and type(reset_ms) is int and which in (1, 2):
            limit = installation_limit if which == 1 else user_limit
            refused_by = None if admitted else _LIMITS[which - 1]
            return Decision(bool(admitted), limit, remaining, reset_ms / 1000, refused_by)
    raise ConnectionError(f"unexpected reply from the rate-limit script: {reply!r}")


def rate_limiter(settings: Settings, *, window: float = 60.0) -> RateLimiter:
    """The limiter a proxy process uses: Redis when ``CATHOUSE_REDIS_URL`` is set, memory otherwise."""
    if settings.redis_url is None:
        return MemoryRateLimiter(window)
    return RedisRateLimiter(
        settings.redis_url.get_secret_value(), window=window, fail_closed=settings.proxy.rate_limit_fail_closed
    )

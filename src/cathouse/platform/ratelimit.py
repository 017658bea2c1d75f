"""Rate limits on the ``limits`` library: in memory, or in Redis when it is configured.

A moving window, so no boundary admits twice the limit; the check and the count are one
step in the store.
"""

from __future__ import annotations

import math
import time
from typing import cast

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from loguru import logger

from cathouse.platform.errors import ServiceUnavailable, TooManyRequests


class LimiterUnavailable(ServiceUnavailable):
    """Rate limiting is unavailable right now (its store cannot be reached); try again shortly."""

    def __init__(self) -> None:
        super().__init__("Rate limiting is unavailable right now; try again shortly.")
        self.headers["Retry-After"] = "5"


class RateLimited(TooManyRequests):
    """Too many attempts; `Retry-After` says in how many seconds to try again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many requests; try again in {retry_after} seconds.")
        self.headers["Retry-After"] = str(retry_after)


def storage_for(redis_url: str | None) -> Storage:
    if redis_url is None:
        return cast(Storage, storage_from_string("async+memory://"))
    scheme, rest = redis_url.split("://", 1)
    # redis-py, the Redis client the broker adapters and the activity store use too.
    return cast(Storage, storage_from_string(f"async+{scheme}://{rest}", implementation="redispy"))


class RateLimiter:
    def __init__(self, storage: Storage, namespace: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._namespace = namespace
        self._items: dict[str, RateLimitItem] = {}

    def _item(self, rate: str) -> RateLimitItem:
        if rate not in self._items:
            self._items[rate] = parse(rate)
        return self._items[rate]

    async def close(self) -> None:
        """Close the store's connections (``limits`` offers no close of its own)."""
        bridge = getattr(self._limiter.storage, "bridge", None)
        if bridge is not None:
            await bridge.get_connection().aclose()

    async def hit(self, rate: str, *key: str) -> None:
        """Count one request against ``rate`` for ``key``; refuse it when over, or when the
        store cannot answer (failing closed)."""
        item = self._item(rate)
        try:
            allowed = await self._limiter.hit(item, self._namespace, *key)
            if allowed:
                return
            stats = await self._limiter.get_window_stats(item, self._namespace, *key)
        except Exception as exc:  # the store is away: refuse rather than let requests through
            logger.warning("rate-limit store unreachable", namespace=self._namespace, error=type(exc).__name__)
            raise LimiterUnavailable() from None
        raise RateLimited(max(1, math.ceil(stats.reset_time - time.time())))

"""One in-process cache for the platform's hot lookups: bounded, least recently used out first,
entries expiring ``ttl`` seconds after they were set, concurrent misses for a key sharing one load.

Used where a request would otherwise repeat work already done a moment ago: the proxy's
installation contexts and API keys, verified tokens, catalog facet counts.

Why not cachetools: its ``TTLCache`` and ``LRUCache`` keep their order in linked lists of
Python objects and expire on every access; a hit costs several times a lookup in an
``OrderedDict`` (``bench/caches.py`` measures both in one run), and a hit is what every proxied
request and every authenticated request does. Neither shares one load between concurrent misses.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final, Generic, Literal, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class _Missing(enum.Enum):
    MISSING = enum.auto()


#: What :meth:`Cache.get` answers for a key it does not hold (a cached value may be ``None``).
MISSING: Final = _Missing.MISSING
Missing = Literal[_Missing.MISSING]


class Cache(Generic[K, V]):
    """At most ``size`` entries, each kept ``ttl`` seconds (forever by default) on ``clock``.

    ``ttl`` or ``size`` of 0 keeps nothing: every :meth:`load` loads.
    """

    __slots__ = ("_entries", "_loading", "clock", "size", "ttl")

    def __init__(self, size: int, ttl: float = math.inf, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | Missing:
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        # Entries kept forever (ttl inf) skip the clock: that is the token cache's every hit.
        if entry[0] != math.inf and entry[0] <= self.clock():
            del self._entries[key]
            return MISSING
        self._entries.move_to_end(key)
        return entry[1]

    def set(self, key: K, value: V) -> None:
        if self.ttl <= 0 or self.size <= 0:
            return
        self._entries[key] = (self.clock() + self.ttl, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    async def load(self, key: K, load: Callable[[K], Awaitable[V]]) -> V:
        """The value kept for ``key``, or else ``load(key)``, kept; callers missing the same key
        meanwhile wait for that one load rather than start their own. A failed load is not kept."""
        value = self.get(key)
        if value is not MISSING:
            return value
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._loading[key]
        future.set_result(value)
        self.set(key, value)
        return value

"""The platform's cache against cachetools, on the operations its three users do.

``cathouse.platform.cache.Cache`` keeps the proxy's installation contexts and API keys (a hit
per proxied call), verified tokens (a hit per authenticated request) and catalog facet counts.
Each operation is timed in one run on the platform's cache and on cachetools' nearest class,
as CPU time of this process per operation:

- hit: a key that is kept (``get``), over ``--keys`` keys;
- miss and set: a key not kept, then set, evicting the least recently used of a full cache
  (what a cold or churning cache does);
- TTL caches (contexts, keys, facets) against ``cachetools.TTLCache``; the token cache, which
  never expires on its own, against ``cachetools.LRUCache``.

    .venv/bin/python bench/caches.py --ops 500000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import cachetools

from cathouse.platform.cache import MISSING, Cache

SIZE = 10_000


def per_op(run: Callable[[int], None], ops: int) -> float:
    """CPU nanoseconds per operation."""
    started = time.process_time()
    run(ops)
    return (time.process_time() - started) / ops * 1e9


def hits_ours(cache: Cache[int, int], keys: int) -> Callable[[int], None]:
    get = cache.get

    def run(ops: int) -> None:
        for n in range(ops):
            if get(n % keys) is MISSING:
                raise SystemExit("the platform's cache missed a kept key")

    return run


def hits_theirs(cache: cachetools.Cache[int, int], keys: int) -> Callable[[int], None]:
    get = cache.get

    def run(ops: int) -> None:
        for n in range(ops):
            if get(n % keys) is None:
                raise SystemExit("cachetools missed a kept key")

    return run


def churn_ours(cache: Cache[int, int]) -> Callable[[int], None]:
    def run(ops: int) -> None:
        base = 10**9 + cache.clock().__hash__()
        for n in range(ops):
            key = base + n
            if cache.get(key) is MISSING:
                cache.set(key, n)

    return run


def churn_theirs(cache: cachetools.Cache[int, int]) -> Callable[[int], None]:
    def run(ops: int) -> None:
        base = 10**9 + time.monotonic().__hash__()
        for n in range(ops):
            key = base + n
            if cache.get(key) is None:
                cache[key] = n

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=500_000)
    parser.add_argument("--keys", type=int, default=1_000, help="keys hit, below the cache's size of 10000")
    args = parser.parse_args()

    def full(cache: Cache[int, int] | cachetools.Cache[int, int]) -> None:
        for key in range(SIZE):
            if isinstance(cache, Cache):
                cache.set(key, key)
            else:
                cache[key] = key

    cases: list[tuple[str, str, Callable[[int], None], Callable[[int], None]]] = []
    for kind, ours, theirs in (
        ("TTL (contexts, keys, facets)", Cache[int, int](SIZE, ttl=300.0), cachetools.TTLCache[int, int](SIZE, 300.0)),
        ("LRU (verified tokens)", Cache[int, int](SIZE), cachetools.LRUCache[int, int](SIZE)),
    ):
        full(ours)
        full(theirs)
        cases.append((kind, "hit", hits_ours(ours, args.keys), hits_theirs(theirs, args.keys)))
        cases.append((kind, "miss and set (evicts)", churn_ours(ours), churn_theirs(theirs)))

    print(f"{args.ops} operations each; caches of {SIZE} entries, full")
    print(f"{'cache':<30} {'operation':<22} {'cachetools ns':>14} {'platform ns':>12} {'cachetools ÷ platform':>22}")
    for kind, operation, ours_run, theirs_run in cases:
        theirs_run(min(args.ops, 20_000))  # warm up
        ours_run(min(args.ops, 20_000))
        theirs_ns = per_op(theirs_run, args.ops)
        ours_ns = per_op(ours_run, args.ops)
        print(f"{kind:<30} {operation:<22} {theirs_ns:>14.0f} {ours_ns:>12.0f} {theirs_ns / ours_ns:>22.2f}")


if __name__ == "__main__":
    main()

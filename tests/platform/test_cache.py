from __future__ import annotations

import asyncio

import pytest

from cathouse.platform.cache import MISSING, Cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_kept_until_its_ttl_has_passed() -> None:
    clock = Clock()
    cache: Cache[str, int] = Cache(10, ttl=5.0, clock=clock)
    cache.set("a", 1)
    clock.now += 4.9
    assert cache.get("a") == 1
    clock.now += 0.1
    assert cache.get("a") is MISSING
    assert len(cache) == 0


def test_a_kept_none_is_told_apart_from_a_missing_key() -> None:
    cache: Cache[str, int | None] = Cache(10)
    cache.set("gone", None)
    assert cache.get("gone") is None
    assert cache.get("never") is MISSING


def test_the_least_recently_used_entry_leaves_first() -> None:
    cache: Cache[str, int] = Cache(2)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.set("c", 3)
    assert cache.get("b") is MISSING
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_setting_a_key_again_replaces_it_and_renews_its_ttl() -> None:
    clock = Clock()
    cache: Cache[str, int] = Cache(10, ttl=5.0, clock=clock)
    cache.set("a", 1)
    clock.now += 4
    cache.set("a", 2)
    clock.now += 4
    assert cache.get("a") == 2
    assert len(cache) == 1


@pytest.mark.parametrize(("size", "ttl"), [(0, 60.0), (10, 0.0)])
def test_a_cache_of_no_size_or_no_ttl_keeps_nothing(size: int, ttl: float) -> None:
    cache: Cache[str, int] = Cache(size, ttl)
    cache.set("a", 1)
    assert cache.get("a") is MISSING


def test_discard_and_clear() -> None:
    cache: Cache[str, int] = Cache(10)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.discard("a")
    cache.discard("never")
    assert cache.get("a") is MISSING
    cache.clear()
    assert len(cache) == 0


async def test_concurrent_misses_share_one_load_and_its_value_is_kept() -> None:
    cache: Cache[str, str] = Cache(10, ttl=60.0)
    calls = []
    release = asyncio.Event()

    async def load(key: str) -> str:
        calls.append(key)
        await release.wait()
        return key.upper()

    waiting = [asyncio.create_task(cache.load("a", load)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == ["A"] * 5
    assert await cache.load("a", load) == "A"
    assert calls == ["a"]


async def test_a_failed_load_fails_every_waiter_and_is_not_kept() -> None:
    cache: Cache[str, str] = Cache(10, ttl=60.0)
    release = asyncio.Event()

    async def failing(key: str) -> str:
        await release.wait()
        raise LookupError(key)

    waiting = [asyncio.create_task(cache.load("a", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, LookupError) for outcome in outcomes)

    async def working(key: str) -> str:
        return "ok"

    assert await cache.load("a", working) == "ok"


async def test_a_cache_without_ttl_loads_every_time() -> None:
    cache: Cache[str, int] = Cache(10, ttl=0)
    calls = 0

    async def load(key: str) -> int:
        nonlocal calls
        calls += 1
        return calls

    assert [await cache.load("a", load) for _ in range(3)] == [1, 2, 3]

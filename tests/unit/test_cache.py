"""The one bounded cache: least recently used out, expiry on an injected clock, a lock on demand."""

from __future__ import annotations

import threading

from minerguard.cache import MISSING, BoundedCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_ttl_or_their_own() -> None:
    clock = Clock()
    cache: BoundedCache[str, int] = BoundedCache(10, ttl=5.0, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2, ttl=60)
    clock.now += 6
    assert cache.get("a") is None
    assert "a" not in cache
    assert cache.get("b") == 2
    assert len(cache) == 1


def test_an_entry_put_again_without_a_lifetime_no_longer_expires() -> None:
    clock = Clock()
    cache: BoundedCache[str, int] = BoundedCache(10, clock=clock)
    cache.put("a", 1, ttl=1)
    cache.put("a", 2)
    clock.now += 10
    assert cache.get("a") == 2


def test_the_least_recently_used_entry_leaves_first() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert cache.get("b") is None
    assert cache.get("a") == 1
    assert len(cache) == 2


def test_peek_and_membership_leave_the_order_alone() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.peek("a") == 1
    assert "a" in cache
    cache.put("c", 3)
    assert "a" not in cache
    assert [key in cache for key in ("b", "c")] == [True, True]


def test_a_remembered_none_is_told_apart_from_a_miss() -> None:
    cache: BoundedCache[str, int | None] = BoundedCache(2)
    cache.put("nothing", None)
    assert cache.get("nothing", MISSING) is None
    assert cache.get("unknown", MISSING) is MISSING


def test_evictions_are_reported_but_pops_and_clears_are_not() -> None:
    evicted: list[tuple[int, str]] = []
    cache: BoundedCache[int, str] = BoundedCache(
        2, on_evict=lambda key, value: evicted.append((key, value))
    )
    for key in range(4):
        cache.put(key, str(key))
    assert cache.pop(3) == "3"
    assert cache.pop(3, "gone") == "gone"
    cache.clear()
    assert evicted == [(0, "0"), (1, "1")]
    assert len(cache) == 0


def test_a_locked_cache_stays_bounded_under_two_threads() -> None:
    cache: BoundedCache[int, int] = BoundedCache(64, locked=True)

    def hammer(offset: int) -> None:
        for key in range(offset, offset + 20_000):
            cache.put(key % 500, key)
            cache.get((key * 7) % 500)

    threads = [threading.Thread(target=hammer, args=(n * 1000,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 64

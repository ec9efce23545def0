"""The TTL cache expires and evicts on an injected clock."""

from __future__ import annotations

from webhook.cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(10, 5.0, clock)
    cache.put("a", 1)
    cache.put("b", 2, ttl=60)
    clock.now += 6
    assert cache.get("a") is None
    assert cache.get("b") == 2
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_least_recently_used_entry_leaves_first() -> None:
    cache: TTLCache[str, int] = TTLCache(2, None, Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert cache.get("b") is None
    assert cache.get("a") == 1
    assert len(cache) == 2

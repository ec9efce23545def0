"""A bounded TTL cache for registry answers, with an injectable clock.

Two of these back image resolution: tags to digests (a tag can move, so it expires) and
digests to configs (content-addressed, so it only leaves when space is needed). Failures are
remembered briefly too, so a dead registry costs one deadline per image, not one per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

Clock = Callable[[], float]


class TTLCache(Generic[K, V]):
    """Least-recently-used eviction beyond ``size``; entries expire ``ttl`` seconds after put."""

    def __init__(self, size: int, ttl: float | None, clock: Clock = time.monotonic) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The live value for ``key``, or None (expired entries are dropped)."""
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        expires, value = item
        if expires < self._clock():
            del self._items[key]
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store ``value``; ``ttl`` overrides the cache's own for this entry."""
        lifetime = self._ttl if ttl is None else ttl
        expires = float("inf") if lifetime is None else self._clock() + lifetime
        self._items[key] = (expires, value)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()

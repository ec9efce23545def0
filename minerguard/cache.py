"""The one bounded cache of the project: least recently used out, optionally expiring and locked.

Every component remembers answers it would rather not compute again: the webhook registry
answers and whole admission decisions, the agent verdicts, overlay layers, pods and the
processes it already judged. Each must stay bounded on a node or a webhook that runs for
months, so they all use this map. It is on the agent's exec hot path: a hit is one dict lookup
and one ``move_to_end``, the lock and the expiry clock cost nothing when not asked for.

- ``ttl``: entries expire that many seconds after ``put`` (``put`` may set a lifetime per
  entry); time comes from ``clock``, injectable for tests.
- ``locked``: every operation under a lock, for maps two threads share (the agent's loop and
  its exec gate).
- ``on_evict``: told of each entry pushed out by the bound (not of expiries or ``pop``).

``None`` is a valid value: callers that store it look up with ``get(key, MISSING)``.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

Clock = Callable[[], float]
"""Seconds on a monotonic scale: ``time.monotonic`` unless a test injects its own."""


class _Missing(enum.Enum):
    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING
"""A ``get`` default that no caller stores, for caches where None is an answer."""


class BoundedCache(Generic[K, V]):
    """At most ``size`` entries; the least recently used goes first."""

    __slots__ = (
        "_clock",
        "_expires",
        "_items",
        "_lock",
        "_on_evict",
        "_size",
        "_ttl",
    )

    def __init__(
        self,
        size: int,
        *,
        ttl: float | None = None,
        clock: Clock = time.monotonic,
        locked: bool = False,
        on_evict: Callable[[K, V], None] | None = None,
    ) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._items: OrderedDict[K, V] = OrderedDict()
        self._expires: dict[K, float] = {}  # only entries that have a lifetime
        self._lock = threading.Lock() if locked else None
        self._on_evict = on_evict

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """The live value for ``key`` (now the most recently used), else ``default``."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            value = self._items.get(key, MISSING)
            if value is MISSING or (self._expires and self._expired(key)):
                return default
            self._items.move_to_end(key)
            return value
        finally:
            if lock is not None:
                lock.release()

    @overload
    def peek(self, key: K) -> V | None: ...

    @overload
    def peek(self, key: K, default: D) -> V | D: ...

    def peek(self, key: K, default: object = None) -> object:
        """Like :meth:`get`, but leaves the order alone."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            value = self._items.get(key, MISSING)
            if value is MISSING or (self._expires and self._expired(key)):
                return default
            return value
        finally:
            if lock is not None:
                lock.release()

    def __contains__(self, key: K) -> bool:
        """Whether ``key`` holds a live entry; the order is left alone."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            return key in self._items and not (self._expires and self._expired(key))
        finally:
            if lock is not None:
                lock.release()

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        """Remember ``value``; ``ttl`` overrides the cache's own lifetime for this entry."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            items = self._items
            items[key] = value
            items.move_to_end(key)
            lifetime = self._ttl if ttl is None else ttl
            if lifetime is not None:
                self._expires[key] = self._clock() + lifetime
            elif self._expires:
                self._expires.pop(key, None)
            if len(items) > self._size:  # one put pushes out at most one entry
                old, gone = items.popitem(last=False)
                if self._expires:
                    self._expires.pop(old, None)
                if self._on_evict is not None:
                    self._on_evict(old, gone)
        finally:
            if lock is not None:
                lock.release()

    def pop(self, key: K, default: V | None = None) -> V | None:
        """Forget ``key``; its value (even an expired one), else ``default``."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            if self._expires:
                self._expires.pop(key, None)
            return self._items.pop(key, default)
        finally:
            if lock is not None:
                lock.release()

    def clear(self) -> None:
        """Forget everything."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            self._items.clear()
            self._expires.clear()
        finally:
            if lock is not None:
                lock.release()

    def __len__(self) -> int:
        """Entries held, expired ones included until they are next looked up or pushed out."""
        return len(self._items)

    def _expired(self, key: K) -> bool:
        """Drop ``key`` if its lifetime is over (the caller holds the lock)."""
        deadline = self._expires.get(key)
        if deadline is None or deadline >= self._clock():
            return False
        del self._items[key]
        del self._expires[key]
        return True

"""Pool addresses learned from DNS answers: a bounded map that respects each answer's TTL.

The network layer fills it as pods resolve pool domains; the behaviour sampler reads it through
``PoolAddresses`` (a connection to a learned address is a pool connection) and the node's
nftables set mirrors it. It is shared between the network thread (writes) and the agent loop
(reads), so writes are locked; it holds at most ``size`` addresses (least recently learned out).

Lifetimes follow the answer's TTL, with a floor of ``min_ttl`` (a pool answering with TTL 0
must not escape by making every answer expire at once) and a ceiling of ``max_ttl``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MIN_TTL = 60.0
MAX_TTL = 86400.0


def lifetime(ttl: int, min_ttl: float = MIN_TTL, max_ttl: float = MAX_TTL) -> float:
    """Seconds an address learned with ``ttl`` stays a pool address."""
    return min(max(float(ttl), min_ttl), max_ttl)


class LearnedPools:
    """address → the pool domain it was learned for, each with its own expiry."""

    def __init__(
        self,
        size: int = 65536,
        *,
        min_ttl: float = MIN_TTL,
        max_ttl: float = MAX_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._map: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._size = size
        self._min = min_ttl
        self._max = max_ttl
        self._clock = clock
        self._lock = threading.Lock()

    def learn(self, address: str, domain: str, ttl: int) -> float:
        """Remember ``address`` as ``domain``'s; returns its lifetime in seconds."""
        seconds = lifetime(ttl, self._min, self._max)
        with self._lock:
            self._map[address] = (domain, self._clock() + seconds)
            self._map.move_to_end(address)
            while len(self._map) > self._size:
                self._map.popitem(last=False)
        return seconds

    def host_of(self, address: str) -> str | None:
        """The pool domain ``address`` was learned for, while it lives."""
        found = self._map.get(address)
        if found is None or found[1] <= self._clock():
            return None
        return found[0]

    def addresses(self) -> list[str]:
        """The addresses alive now (expired ones are dropped on the way)."""
        now = self._clock()
        with self._lock:
            for address in [a for a, (_d, expiry) in self._map.items() if expiry <= now]:
                del self._map[address]
            return list(self._map)

    def __len__(self) -> int:
        """Addresses held (expired ones included until ``addresses`` runs)."""
        return len(self._map)

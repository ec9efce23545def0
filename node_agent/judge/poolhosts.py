"""Pool host names resolved to addresses, so a connection by IP can be matched to a pool.

Resolution uses the node's resolver and therefore the network: it is off by default
(``MINERGUARD_AGENT_RESOLVE_POOL_HOSTS``) and runs in a background thread, refreshed
periodically, so a slow DNS server never stalls the sampling loop. Tests inject a static map.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Protocol

Resolve = Callable[[str], list[str]]


class HostOf(Protocol):
    """Anything that names the pool host of an address (``learned_pools.LearnedPools``)."""

    def host_of(self, address: str) -> str | None:
        """The pool host, or None."""
        ...


def system_resolve(host: str) -> list[str]:
    """Addresses of ``host`` from getaddrinfo; empty on failure."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


class PoolAddresses:
    """address → pool host, replaced atomically on each refresh."""

    def __init__(
        self, static: Mapping[str, str] | None = None, learned: HostOf | None = None
    ) -> None:
        self._map: Mapping[str, str] = MappingProxyType(dict(static or {}))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.learned = learned
        """Addresses the network layer learned from pods' DNS answers (TTL-bound), if any."""

    def host_of(self, address: str) -> str | None:
        """The pool host an address belongs to, if any (resolved here, or learned from DNS)."""
        found = self._map.get(address)
        if found is None and self.learned is not None:
            found = self.learned.host_of(address)
        return found

    def refresh(self, hosts: Iterable[str], resolve: Resolve = system_resolve) -> None:
        """Resolve every host now (blocking) and swap the map in."""
        found: dict[str, str] = {}
        for host in hosts:
            if self._stop.is_set():
                return
            for address in resolve(host):
                found.setdefault(address, host)
        self._map = MappingProxyType(found)

    def start(self, hosts: list[str], interval: float, resolve: Resolve = system_resolve) -> None:
        """Refresh in a daemon thread every ``interval`` seconds."""

        def loop() -> None:
            while not self._stop.is_set():
                self.refresh(hosts, resolve)
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name="mg-pool-dns", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing."""
        self._stop.set()

"""The ConfigMaps and Secrets a review reads: watched, cached, deadline-bounded, named when not.

What a container's env and command-line files hold can come from ConfigMaps and Secrets
(:mod:`minerguard.references` resolves them); this module reads those objects for a review.

ConfigMaps are *watched*: one cluster-wide list-watch (:class:`minerguard.kube.listwatch.
ListWatch`, the loop behind every cache) keeps their data in memory, so a review reads them
with no API round trip, and a change reaches the cache as the API server announces it (no
stale window an attacker could time). The memory is bounded (``max_bytes``): past it, objects
are not kept and are read on demand like a miss. A miss (not yet listed, created a moment ago,
over the bound) is a GET under the review's deadline.

Secrets are *not* watched: a list-watch of every Secret would keep every token and key of the
cluster in the webhook's memory and needs ``list`` on Secrets cluster-wide. They are read by
name (``get``, which the chart grants only on opt-in), through a short-lived cache so that a
burst of replicas costs one read; the TTL is the window in which a changed Secret is judged
on its previous value.

Every read is bounded by the review's deadline (the client's socket timeout too, so no worker
thread outlives it by much); what was not read in time, was refused (RBAC) or failed is
returned as :class:`~minerguard.references.Unreadable` and named in the decision.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from minerguard import references
from minerguard.cache import BoundedCache, Clock
from minerguard.kube import errors, listwatch, resources

log = logging.getLogger(__name__)

ApiFactory = Callable[[], Any]
Found = references.Data | references.Unreadable | None
PLURALS = {references.CONFIGMAP: "configmaps", references.SECRET: "secrets"}
_TOO_BIG = object()
_NOT_FOUND = object()


def _size(data: references.Data) -> int:
    return sum(len(k) + len(v) for k, v in data.items())


def _key(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class ConfigMapWatch:
    """Every ConfigMap's data, kept by a list-watch, within ``max_bytes``."""

    def __init__(self, factory: ApiFactory, *, max_bytes: int, watch_timeout: int = 300) -> None:
        self._max = max_bytes
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], references.Data | object] = {}
        self._bytes = 0
        self._stop = threading.Event()
        self.dropped = 0
        self._watch = listwatch.ListWatch(
            "configmaps",
            factory=factory,
            url_path=resources.path("v1", "configmaps"),
            query={},
            replace=self._replace,
            apply=self._apply,
            watch_timeout=watch_timeout,
            stop=self._stop,
        )

    @property
    def synced(self) -> threading.Event:
        """Set once the first list succeeded."""
        return self._watch.synced

    @property
    def bytes(self) -> int:
        """Characters of data held (keys and values)."""
        return self._bytes

    def start(self) -> ConfigMapWatch:
        """Start watching; returns self."""
        self._watch.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop now: the blocked watch read is interrupted."""
        self._stop.set()
        self._watch.interrupt()
        self._watch.thread.join(timeout)

    def get(self, namespace: str, name: str) -> references.Data | None:
        """The data when held; None when not held (unknown: the caller reads it)."""
        with self._lock:
            found = self._data.get((namespace, name))
        return None if found is None or found is _TOO_BIG else found  # type: ignore[return-value]

    def _put(self, key: tuple[str, str], obj: Mapping[str, Any]) -> None:
        data = references.object_data({**obj, "kind": references.CONFIGMAP}) or {}
        self._forget(key)
        size = _size(data)
        if self._bytes + size > self._max:
            self.dropped += 1
            self._data[key] = _TOO_BIG  # read on demand
            return
        self._data[key] = data
        self._bytes += size

    def _forget(self, key: tuple[str, str]) -> None:
        old = self._data.pop(key, None)
        if isinstance(old, Mapping):
            self._bytes -= _size(old)

    def _apply(self, event_type: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        if key is None:
            return
        with self._lock:
            if event_type == "DELETED":
                self._forget(key)
            else:
                self._put(key, obj)

    def _replace(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0
            for obj in items:
                key = _key(obj)
                if key is not None:
                    self._put(key, obj)


class ObjectReader:
    """Reads what a review references; one per webhook process."""

    def __init__(
        self,
        factory: ApiFactory,
        *,
        watch: ConfigMapWatch | None = None,
        secret_ttl: float = 2.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._factory = factory
        self._api: Any = None
        self._watch = watch
        self._secrets: BoundedCache[tuple[str, str], Found | object] = BoundedCache(
            1024, ttl=secret_ttl, clock=clock
        )
        self._ttl = secret_ttl
        self.watch = watch
        self.reads = 0
        self.failures = 0
        self.hits = 0

    def _client(self) -> Any:
        if self._api is None:
            self._api = self._factory()
        return self._api

    def _get(self, kind: str, namespace: str, name: str, timeout: float) -> Found:
        """One GET (in a worker thread), its socket bounded by ``timeout``."""
        path = resources.path("v1", PLURALS[kind], namespace, name)
        try:
            body = resources.read_json(
                resources.request(self._client(), "GET", path, timeout=timeout)
            )
        except errors.NotFound:
            return None
        except errors.Forbidden:
            return references.Unreadable("forbidden: the webhook may not read it", forbidden=True)
        except errors.ApiError as err:
            return references.Unreadable(f"API error {err.status or 'no answer'}")
        return references.object_data({**body, "kind": kind}) or {}

    async def _read(self, kind: str, namespace: str, name: str, timeout: float) -> Found:
        if kind == references.CONFIGMAP and self._watch is not None:
            held = self._watch.get(namespace, name)
            if held is not None:
                self.hits += 1
                return held
        cached = self._secrets.get((namespace, name)) if kind == references.SECRET else None
        if cached is not None:
            self.hits += 1
            return None if cached is _NOT_FOUND else cached  # type: ignore[return-value]
        self.reads += 1
        try:
            async with asyncio.timeout(timeout):
                found = await asyncio.to_thread(self._get, kind, namespace, name, timeout)
        except TimeoutError:
            found = references.Unreadable(f"no answer within {timeout:.1f}s")
        if isinstance(found, references.Unreadable):
            self.failures += 1
            log.warning("%s %s/%s not read: %s", kind, namespace, name, found.reason)
        if kind == references.SECRET and self._ttl > 0 and not _transient(found):
            self._secrets.put((namespace, name), _NOT_FOUND if found is None else found)
        return found

    async def fetch(
        self, namespace: str, wanted: Iterable[tuple[str, str]], timeout: float
    ) -> dict[tuple[str, str], Found]:
        """Every wanted ``(kind, name)``: its data, an Unreadable, or None (not found)."""
        keys = [key for key in dict.fromkeys(wanted) if key[0] in PLURALS]
        if not keys:
            return {}
        found = await asyncio.gather(
            *(self._read(kind, namespace, name, timeout) for kind, name in keys)
        )
        return dict(zip(keys, found, strict=True))


def _transient(found: Found) -> bool:
    """Time-outs and server errors are retried by the next review, not remembered."""
    return isinstance(found, references.Unreadable) and not found.forbidden


class ReadCounts(Collector):
    """The reader's counters as Prometheus series (counts and sizes only, never a value)."""

    def __init__(self, reader: ObjectReader) -> None:
        self._reader = reader

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Reads by outcome; the ConfigMap watch's memory and objects left out of it."""
        reads = CounterMetricFamily(
            "minerguard_webhook_reference_reads",
            "ConfigMaps and Secrets a review read, by where from (memory: the ConfigMap watch "
            "or the Secret cache; api: a GET) and whether it failed (timed out, refused, error)",
            labels=["source", "result"],
        )
        reader = self._reader
        reads.add_metric(["memory", "ok"], reader.hits)
        reads.add_metric(["api", "ok"], reader.reads - reader.failures)
        reads.add_metric(["api", "failed"], reader.failures)
        yield reads
        watch = reader.watch
        if watch is None:
            return
        held = GaugeMetricFamily(
            "minerguard_webhook_configmap_cache_bytes",
            "Characters of ConfigMap data held by the webhook's ConfigMap watch",
        )
        held.add_metric([], watch.bytes)
        yield held
        dropped = CounterMetricFamily(
            "minerguard_webhook_configmap_cache_skipped",
            "ConfigMaps not kept by the watch (over configmap_cache_bytes): read on demand",
        )
        dropped.add_metric([], watch.dropped)
        yield dropped

"""Fold repeated detections of one miner into the first, instead of acting again.

An agent that sees the same miner every sampling window would otherwise create a detection,
an Event and a deletion attempt each time. The key (:class:`~.records.DedupKey`) holds what
decides the response (layer, mode, policy, actions requested) besides the pod and signal, so a
record of a weaker kind never swallows a stronger one: an Enforce runtime detection is only ever
folded into another Enforce runtime detection of the same pod. The first detection of a key is
the original; later
ones within ``dedupWindowSeconds`` of it increment its ``status.occurrences`` and are deleted.
Claims are made under a lock, so two duplicates handled at once cannot both become originals,
and a duplicate whose handler is retried is counted once; the index is seeded from the
processed detections in the cluster after a restart.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from minerguard_operator.decide.records import DedupKey


@dataclass(frozen=True, slots=True)
class Fold:
    """This detection repeats ``original``, which has now seen ``occurrences``."""

    original: str
    occurrences: int


@dataclass
class _Original:
    ref: str
    first: float
    occurrences: int
    folded: set[str] = field(default_factory=set)


class DedupIndex:
    """The current original of each key; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._originals: dict[DedupKey, _Original] = {}

    def observe(self, key: DedupKey, ref: str, first: float, occurrences: int) -> None:
        """Learn of a processed detection (a restart, or a status change of our own)."""
        with self._lock:
            current = self._originals.get(key)
            if current is None or (current.ref != ref and first > current.first):
                self._originals[key] = _Original(ref, first, occurrences)
            elif current.ref == ref:
                current.occurrences = max(current.occurrences, occurrences)

    def claim(self, key: DedupKey, ref: str, at: float, window: float) -> Fold | None:
        """Fold ``ref`` into the key's original, or make it the original (returns None)."""
        with self._lock:
            current = self._originals.get(key)
            if current is not None and ref in current.folded:
                return Fold(current.ref, current.occurrences)  # a retried handler: count once
            if current is not None and current.ref != ref and 0 <= at - current.first <= window:
                current.occurrences += 1
                current.folded.add(ref)
                return Fold(current.ref, current.occurrences)
            if current is None or current.ref != ref:
                self._originals[key] = _Original(ref, at, 1)
            return None

    def forget(self, key: DedupKey, ref: str) -> None:
        """Drop an original that no longer exists (expired or deleted by a person)."""
        with self._lock:
            current = self._originals.get(key)
            if current is not None and current.ref == ref:
                del self._originals[key]

    def __len__(self) -> int:
        return len(self._originals)

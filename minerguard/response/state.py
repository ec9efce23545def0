"""Everything the operator keeps in memory between handler calls, in one place."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from minerguard.policy_book import PolicyBook
from minerguard.response.breaker import CircuitBreaker
from minerguard.response.dedup import DedupIndex
from minerguard.response.metrics import Metrics
from minerguard.response.records import DetectionRecord


class Emit(Protocol):
    """Posts a Kubernetes Event about an object (kopf's poster in the operator)."""

    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Queue the Event; never blocks the caller."""


@dataclass
class State:
    """Policies, breaker, dedup index and metrics shared by all handlers (thread-safe)."""

    policies: PolicyBook = field(default_factory=PolicyBook)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    dedup: DedupIndex = field(default_factory=DedupIndex)
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], float] = time.time

    def learn(self, record: DetectionRecord) -> None:
        """Seed dedup and the breaker from a detection seen in the cluster (startup, restarts)."""
        if not record.processed:
            return
        if record.key is not None:
            self.dedup.observe(
                record.key, record.ref, record.created or self.clock(), record.occurrences
            )
        if record.destructive and record.policy and record.acted_at is not None:
            self.breaker.observe(record.policy, record.ref, record.acted_at)

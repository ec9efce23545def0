"""Everything the operator keeps in memory between handler calls, in one place."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from minerguard.policy_book import PolicyBook
from minerguard_operator.decide.breaker import CircuitBreaker
from minerguard_operator.decide.dedup import DedupIndex
from minerguard_operator.decide.records import DetectionRecord
from minerguard_operator.metrics import Metrics


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

"""Which detections have outlived their policy's ``retention.ttlSeconds``.

Expiry is swept per policy rather than timed per detection: a kopf timer or daemon on every
detection would put a finalizer on each one, and ``kubectl delete md`` would hang whenever the
operator is down.
"""

from __future__ import annotations

from collections.abc import Iterable

from minerguard_operator.decide.records import DetectionRecord


def expired(record: DetectionRecord, ttl_seconds: float, now: float) -> bool:
    """Whether a detection is older than the TTL (a detection with no timestamp never is)."""
    return record.created is not None and now - record.created >= ttl_seconds


def sweep(records: Iterable[DetectionRecord], ttl_seconds: float, now: float) -> list[str]:
    """``namespace/name`` of every expired detection, oldest first."""
    due = [r for r in records if expired(r, ttl_seconds, now)]
    return [r.ref for r in sorted(due, key=lambda r: (r.created or 0.0, r.ref))]

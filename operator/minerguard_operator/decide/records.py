"""What the operator remembers about each MinerDetection, read once from its body.

Built from raw bodies (watch events, lists) without validating the whole model: a detection
with a broken spec must still be counted and expired.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from minerguard.api.detection import ActionTaken, Phase
from minerguard.timestamps import parse_time
from minerguard_operator.decide.planning import DESTRUCTIVE


@dataclass(frozen=True, slots=True)
class DedupKey:
    """Detections with equal keys describe the same miner *and ask for the same response*.

    Same pod (by name and, where given, uid), container and top reason, and also everything
    that decides what the operator does: the layer, the mode, the policy and the actions
    requested. Folding by pod and signal alone let a weaker record (an admission Warn, a
    background-scan Audit record, a forged review's record) posted first swallow the agent's
    later Enforce detection of the same pod, so nothing was done; with the response in the key,
    a detection only ever folds into one that asked for exactly the same thing.
    """

    namespace: str
    pod: str
    container: str
    reason: str
    pod_uid: str = ""
    layer: str = ""
    mode: str = ""
    policy: str = ""
    object_kind: str = "Pod"
    actions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DetectionRecord:
    """The fields of a detection that retention, dedup, counts and the breaker need."""

    namespace: str
    name: str
    policy: str | None
    created: float | None
    phase: str | None
    acted_at: float | None
    occurrences: int
    key: DedupKey | None
    destructive: bool
    """The operator took a destructive step (failed ones too): the breaker counts it."""

    @property
    def ref(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def processed(self) -> bool:
        """Whether the operator has already decided about it."""
        return self.phase not in (None, Phase.PENDING.value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def top_reason(reasons: Any) -> str | None:
    """The strongest signal's name (the first one on equal weights)."""
    best: tuple[float, str] | None = None
    for reason in reasons if isinstance(reasons, list) else ():
        item = _mapping(reason)
        signal = item.get("signal")
        if not isinstance(signal, str):
            continue
        weight = item.get("weight")
        score = float(weight) if isinstance(weight, int | float) else 0.0
        if best is None or score > best[0]:
            best = (score, signal)
    return best[1] if best else None


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def dedup_key(namespace: str, spec: Mapping[str, Any]) -> DedupKey | None:
    """The key of a detection; None when it names no pod or no reason (never folded)."""
    pod, reason = spec.get("podName"), top_reason(spec.get("reasons"))
    if not isinstance(pod, str) or not pod or reason is None:
        return None
    requested = spec.get("actionsRequested")
    actions = (
        sorted({a for a in requested if isinstance(a, str)}) if isinstance(requested, list) else []
    )
    return DedupKey(
        namespace,
        pod,
        _text(spec.get("container")),
        reason,
        pod_uid=_text(spec.get("podUID")),
        layer=_text(spec.get("layer")),
        mode=_text(spec.get("mode"), "Enforce"),
        policy=_text(spec.get("policy")),
        object_kind=_text(spec.get("objectKind"), "Pod"),
        actions=tuple(actions),
    )


def record(body: Mapping[str, Any]) -> DetectionRecord:
    """The record of a raw MinerDetection body."""
    metadata, spec, status = (_mapping(body.get(k)) for k in ("metadata", "spec", "status"))
    namespace = str(metadata.get("namespace") or "default")
    policy = spec.get("policy")
    phase = status.get("phase")
    occurrences = status.get("occurrences")
    taken = ActionTaken.parse_all(status.get("actionsTaken"))
    destructive = any(entry.action in DESTRUCTIVE for entry in taken)
    return DetectionRecord(
        namespace=namespace,
        name=str(metadata.get("name") or ""),
        policy=policy if isinstance(policy, str) and policy else None,
        created=parse_time(metadata.get("creationTimestamp")),
        phase=phase if isinstance(phase, str) else None,
        acted_at=parse_time(status.get("actedAt")),
        occurrences=occurrences if isinstance(occurrences, int) and occurrences > 0 else 1,
        key=dedup_key(namespace, spec),
        destructive=destructive,
    )

"""The status the operator writes on detections and policies.

Policy conditions follow the Kubernetes convention: ``Ready`` says whether the policy compiled
(with the offending field in the message), ``CircuitOpen`` whether the rate limit has switched
it to alert-only; a condition's ``lastTransitionTime`` only moves when its status changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from minerguard.api.detection import ActionTaken, MinerDetectionStatus, Phase
from minerguard.api.meta import Condition, ConditionStatus
from minerguard.api.policy import PolicyCounts
from minerguard_operator.decide.records import DetectionRecord

READY = "Ready"
CIRCUIT_OPEN = "CircuitOpen"


def summary(actions_taken: Sequence[ActionTaken], phase: Phase) -> str:
    """The detection's short ``status.action`` (a printer column): the actions, in order."""
    names = list(dict.fromkeys(entry.name for entry in actions_taken))
    return ",".join(names) if names else phase.value


def detection_status(
    phase: Phase, actions_taken: Sequence[ActionTaken], message: str, acted_at: str | None
) -> dict[str, Any]:
    """A detection's status patch; ``occurrences`` is left alone (dedup owns it)."""
    status = MinerDetectionStatus(
        phase=phase,
        action=summary(actions_taken, phase),
        actions_taken=[str(entry) for entry in actions_taken],
        message=message[:1024] or None,
        acted_at=acted_at,
    ).to_k8s()
    status.pop("occurrences", None)
    return status


def known_conditions(previous: Sequence[Any]) -> dict[str, Condition]:
    """A status's conditions by type, as read back from the cluster (junk skipped)."""
    known: dict[str, Condition] = {}
    for raw in previous:
        try:
            condition = Condition.model_validate(raw)
        except ValueError:
            continue
        known[condition.type] = condition
    return known


def condition(
    previous: Mapping[str, Condition],
    kind: str,
    status: ConditionStatus,
    *,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> Condition:
    """The condition, keeping its transition time while its status holds."""
    before = previous.get(kind)
    since = before.last_transition_time if before and before.status is status else None
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since or now,
        observed_generation=generation,
    )


def policy_conditions(
    previous: Sequence[Any],
    *,
    error: str | None,
    open_until: str | None,
    now: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """``Ready`` and ``CircuitOpen`` for a policy, keeping unchanged transition times."""
    known = known_conditions(previous)
    ready = (
        condition(
            known,
            READY,
            ConditionStatus.FALSE,
            reason="InvalidSpec",
            message=error,
            now=now,
            generation=generation,
        )
        if error
        else condition(
            known,
            READY,
            ConditionStatus.TRUE,
            reason="Compiled",
            message="signatures compiled; admission and agents use this generation",
            now=now,
            generation=generation,
        )
    )
    circuit = (
        condition(
            known,
            CIRCUIT_OPEN,
            ConditionStatus.TRUE,
            reason="RateLimitExceeded",
            message=f"destructive actions suspended until {open_until}: alert only",
            now=now,
            generation=generation,
        )
        if open_until
        else condition(
            known,
            CIRCUIT_OPEN,
            ConditionStatus.FALSE,
            reason="WithinRateLimit",
            message="destructive actions allowed",
            now=now,
            generation=generation,
        )
    )
    return [ready.to_k8s(), circuit.to_k8s()]


def counts(records: Sequence[DetectionRecord]) -> dict[str, Any]:
    """``status.counts`` of a policy from its existing detections."""
    return PolicyCounts(
        detections=len(records),
        actions=sum(1 for r in records if r.phase == Phase.ACTED.value),
        suppressed_actions=sum(1 for r in records if r.phase == Phase.SUPPRESSED.value),
    ).to_k8s()

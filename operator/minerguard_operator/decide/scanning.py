"""What a background scan records when a policy is created or changed.

Turning minerguard on should tell you about miners already running. The scan evaluates every
top-level object (bare pods and the workloads that make pods, not each replica) exactly as
admission would (:func:`minerguard.evaluate.evaluate_object`) and records each finding as an
Audit detection: nothing is acted on, a person decides. Names are derived from the policy,
object uid, container and signal, so a repeated scan finds its earlier records (409), not
duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minerguard import detections, evaluate
from minerguard.api.detection import MinerDetection
from minerguard.compiled_policy import CompiledPolicy
from minerguard.errors import UnsupportedObjectError
from minerguard_operator.decide import marks

SCANNED_KINDS = (
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
)


def controller(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with ``controller: true``, if any."""
    metadata = obj.get("metadata")
    refs = metadata.get("ownerReferences") if isinstance(metadata, Mapping) else None
    for ref in refs if isinstance(refs, list) else ():
        if isinstance(ref, Mapping) and ref.get("controller"):
            return ref
    return None


def is_top_level(obj: Mapping[str, Any]) -> bool:
    """Whether nothing controls the object (its controller's template is scanned instead)."""
    return controller(obj) is None


def detection_name(
    policy: str, kind: str, name: str, *, uid: str, container: str, signal: str
) -> str:
    """A stable, DNS-1123 name for one scan finding."""
    digest = marks.short_hash(policy, kind, uid or name, container, signal)
    return f"scan-{marks.dns_label(kind, 14)}-{marks.dns_label(name, 30)}-{digest}"


def scan_object(
    obj: Mapping[str, Any],
    policy: CompiledPolicy,
    namespace_labels: Mapping[str, str],
    now: float,
) -> list[MinerDetection]:
    """Audit detections for one object's findings under one policy (none when clean)."""
    try:
        decision = evaluate.evaluate_object(obj, [policy], namespace_labels=namespace_labels)
    except UnsupportedObjectError:
        return []
    metadata = obj.get("metadata") or {}
    kind, name = str(obj.get("kind")), str(metadata.get("name") or "")
    uid, namespace = str(metadata.get("uid") or ""), metadata.get("namespace") or "default"
    found = []
    for finding in decision.findings:
        top = finding.verdict.signals[0]
        found.append(
            detections.from_admission(
                finding,
                object_kind=kind,
                object_name=name,
                namespace=namespace,
                observed_at=now,
                mode="Audit",
                labels={marks.SCAN: marks.dns_label(policy.name, 63)},
                name=detection_name(
                    policy.name,
                    kind,
                    name,
                    uid=uid,
                    container=finding.container.name,
                    signal=top.name,
                ),
                pod_uid=uid if kind == "Pod" and uid else None,
            )
        )
    return found

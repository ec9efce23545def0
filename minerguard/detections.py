"""Building ``MinerDetection`` records: one builder for the webhook, the agent and the scan.

Each finder knows different things (the webhook who asked, the agent the process and its
connections, the background scan only the workload), but the record they write is the same:
scores and weights rounded alike, times in one format, free text capped so a hostile command
line cannot bloat the object. :func:`build` is that record; :func:`from_admission` fills it from
an admission-style finding of :mod:`minerguard.evaluate`, which the webhook (a denied or warned
object) and the operator's background scan (a workload already running) share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from minerguard import timestamps
from minerguard.api import detection, meta
from minerguard.evaluate import Finding

MAX_COMMAND_CHARS = 4096
"""Longest command line a detection records (the rest is cut)."""
MAX_DETAIL_CHARS = 1024
"""Longest reason detail a detection records."""


def build(
    *,
    layer: detection.Layer,
    score: float,
    reasons: Iterable[tuple[str, str, float]],
    observed_at: float,
    policy: str | None,
    mode: str,
    namespace: str | None,
    labels: Mapping[str, str],
    name: str | None = None,
    pod_name: str | None = None,
    pod_uid: str | None = None,
    object_kind: str = "Pod",
    container: str | None = None,
    node: str | None = None,
    image: str | None = None,
    image_digest: str | None = None,
    owner: detection.OwnerReference | None = None,
    evidence: detection.Evidence | None = None,
    requesting_user: str | None = None,
    requesting_groups: Sequence[str] = (),
    actions_requested: Sequence[str] = (),
    actions_taken: Sequence[str] = (),
) -> detection.MinerDetection:
    """The MinerDetection for one finding.

    ``reasons`` are ``(signal, detail, weight)``; ``observed_at`` is epoch seconds; ``mode``
    is the policy's (anything but ``Audit`` records as ``Enforce``). ``actions_taken`` (the
    agent's own, done before reporting) make the record born ``Acted``. Without ``name`` the
    reporter names it.
    """
    observed = timestamps.format_time(observed_at)
    spec = detection.MinerDetectionSpec(
        pod_name=pod_name,
        pod_uid=pod_uid,
        object_kind=object_kind,
        container=container,
        node=node,
        image=image,
        image_digest=image_digest,
        owner=owner,
        layer=layer,
        score=round(score, 3),
        reasons=[
            detection.Reason(signal=signal, detail=detail[:MAX_DETAIL_CHARS], weight=round(w, 3))
            for signal, detail, w in reasons
        ],
        evidence=evidence or detection.Evidence(),
        policy=policy,
        mode="Audit" if mode == "Audit" else "Enforce",
        requesting_user=requesting_user,
        requesting_groups=list(requesting_groups),
        actions_requested=list(actions_requested),
        observed_at=observed,
    )
    status = None
    if actions_taken:
        status = detection.MinerDetectionStatus(
            phase=detection.Phase.ACTED,
            action=", ".join(actions_taken),
            actions_taken=list(actions_taken),
            acted_at=observed,
        )
    return detection.MinerDetection(
        metadata=meta.ObjectMeta(name=name, namespace=namespace, labels=dict(labels)),
        spec=spec,
        status=status,
    )


def from_admission(
    finding: Finding,
    *,
    object_kind: str,
    object_name: str | None,
    namespace: str,
    observed_at: float,
    mode: str,
    labels: Mapping[str, str],
    name: str | None = None,
    pod_uid: str | None = None,
    owner: detection.OwnerReference | None = None,
    requesting_user: str | None = None,
    requesting_groups: Sequence[str] = (),
    actions_requested: Sequence[str] = (),
) -> detection.MinerDetection:
    """The Admission-layer detection of one container of an object (webhook and scan)."""
    return build(
        layer=detection.Layer.ADMISSION,
        score=finding.verdict.score,
        reasons=((s.name, s.describe(), s.weight) for s in finding.verdict.signals),
        observed_at=observed_at,
        policy=finding.policy.name,
        mode=mode,
        namespace=namespace,
        labels=labels,
        name=name,
        pod_name=object_name,
        pod_uid=pod_uid,
        object_kind=object_kind,
        container=finding.container.name,
        image=finding.container.image or None,
        image_digest=finding.image_digest,
        owner=owner,
        evidence=detection.Evidence(
            command_line=" ".join(finding.argv)[:MAX_COMMAND_CHARS] or None
        ),
        requesting_user=requesting_user,
        requesting_groups=requesting_groups,
        actions_requested=actions_requested,
    )

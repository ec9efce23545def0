"""Turn findings into MinerDetection objects and send them somewhere.

Standalone mode prints them (one JSON object per line, or a text line); in-cluster mode hands
them to ``clusterreport.ClusterReporter``, which buffers and retries.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from minerguard.api import detection, meta
from node_agent.finding import Finding

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PodRef:
    """The pod a finding belongs to, where the API told us."""

    namespace: str
    name: str
    uid: str
    container: str | None = None
    image: str | None = None
    image_digest: str | None = None
    node: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    owner: detection.OwnerReference | None = None


class Sink(Protocol):
    """Where findings go."""

    def emit(self, finding: Finding, pod: PodRef | None) -> None:
        """Deliver (or queue) one finding."""
        ...


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def detection_name(finding: Finding, pod: PodRef | None) -> str:
    """A stable, DNS-safe name: the same process and layer always map to the same object."""
    f = finding
    key = f"{f.layer}/{f.pod_uid}/{f.container_id}/{f.pid}/{f.start_ticks}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    base = pod.name if pod else "host"
    return f"{base[:40].rstrip('-.')}-{finding.layer.lower()}-{digest}"


def to_detection(
    finding: Finding, pod: PodRef | None, node: str | None
) -> detection.MinerDetection:
    """The MinerDetection for a finding."""
    evidence = detection.Evidence(
        pid=finding.pid,
        executable=finding.executable,
        command_line=finding.command_line,
        cgroup=finding.cgroup,
        container_id=finding.container_id,
        cpu_fraction=None if finding.cpu_fraction is None else round(finding.cpu_fraction, 3),
        connections=[
            detection.Connection(
                remote_address=c.remote_address,
                remote_port=c.remote_port,
                local_port=c.local_port,
                state="ESTABLISHED" if c.established else str(c.state),
            )
            for c in finding.connections
        ],
    )
    spec = detection.MinerDetectionSpec(
        pod_name=pod.name if pod else None,
        pod_uid=finding.pod_uid,
        container=pod.container if pod else None,
        node=node,
        image=pod.image if pod else None,
        image_digest=pod.image_digest if pod else None,
        owner=pod.owner if pod else None,
        layer=detection.Layer(finding.layer),
        score=round(finding.score, 3),
        reasons=[
            detection.Reason(signal=r.signal, detail=r.detail, weight=round(r.weight, 3))
            for r in finding.reasons
        ],
        evidence=evidence,
        policy=finding.policy,
        mode="Audit" if finding.mode == "Audit" else "Enforce",
        actions_requested=list(finding.actions_requested),
        observed_at=_iso(finding.observed_at),
    )
    status = None
    if finding.actions_taken:
        status = detection.MinerDetectionStatus(
            phase=detection.Phase.ACTED,
            action=", ".join(finding.actions_taken),
            actions_taken=list(finding.actions_taken),
            acted_at=_iso(finding.observed_at),
        )
    return detection.MinerDetection(
        metadata=meta.ObjectMeta(
            name=detection_name(finding, pod),
            namespace=pod.namespace if pod else None,
            labels={"app.kubernetes.io/managed-by": "minerguard-agent"},
        ),
        spec=spec,
        status=status,
    )


class PrintSink:
    """Standalone output: JSON lines or one text line per finding, flushed at once."""

    def __init__(self, stream: TextIO, output: str = "text", node: str | None = None) -> None:
        self._stream = stream
        self._json = output == "json"
        self._node = node
        self.count = 0

    def emit(self, finding: Finding, pod: PodRef | None) -> None:
        """Print the finding now."""
        self.count += 1
        log.warning("%s", finding.summary)
        if self._json:
            body = to_detection(finding, pod, self._node).to_k8s()
            self._stream.write(json.dumps(body, sort_keys=True) + "\n")
        else:
            self._stream.write(finding.summary + "\n")
        self._stream.flush()

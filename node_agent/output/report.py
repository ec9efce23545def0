"""Turn findings into MinerDetection objects and send them somewhere.

Without a cluster (``--no-cluster``) ``PrintSink`` prints them (one JSON object per line, or a
text line); in a cluster ``clusterreport.ClusterSink`` hands them to a reporter, which buffers
and retries.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Protocol, TextIO

from minerguard import detections
from minerguard.api import detection
from minerguard.timestamps import format_time
from node_agent.records import LAYER_NETWORK, Finding, PodRef

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where findings go."""

    def emit(self, finding: Finding, pod: PodRef | None) -> None:
        """Deliver (or queue) one finding."""
        ...


def detection_name(finding: Finding, pod: PodRef | None) -> str:
    """A stable, DNS-safe name: the same process and layer always map to the same object."""
    f = finding
    key = f"{f.layer}/{f.pod_uid}/{f.container_id}/{f.pid}/{f.start_ticks}"
    if f.layer == LAYER_NETWORK and f.reasons:
        # no process may be known: one record per kind of evidence and mode, not per pod
        key += f"/{f.reasons[0].signal}/{f.mode}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    base = pod.name if pod else "host"
    return f"{base[:40].rstrip('-.')}-{finding.layer.lower()}-{digest}"


def _lineage(finding: Finding) -> list[detection.ProcessLink]:
    """The evidence's ancestors of a finding (empty when its ancestry was not read)."""
    if finding.ancestry is None:
        return []
    return [
        detection.ProcessLink(
            pid=link.pid,
            executable=link.executable,
            command_line=link.command_line,
            started_at=None if link.started_at is None else format_time(link.started_at),
            exited=link.exited,
        )
        for link in finding.ancestry.lineage
    ]


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
                host=c.host,
                protocol=c.protocol,
            )
            for c in finding.connections
        ],
        lookups=list(finding.lookups),
        lineage=_lineage(finding),
        entry=finding.ancestry.entry if finding.ancestry else None,
        entry_detail=finding.ancestry.why or None if finding.ancestry else None,
        executable_origin=finding.ancestry.executable_origin if finding.ancestry else None,
        downloaded_by=finding.ancestry.downloaded_by if finding.ancestry else None,
    )
    return detections.build(
        layer=detection.Layer(finding.layer),
        score=finding.score,
        reasons=((r.signal, r.detail, r.weight) for r in finding.reasons),
        observed_at=finding.observed_at,
        policy=finding.policy,
        mode=finding.mode,
        namespace=pod.namespace if pod else None,
        labels={"app.kubernetes.io/managed-by": "minerguard-agent"},
        name=detection_name(finding, pod),
        pod_name=pod.name if pod else None,
        pod_uid=finding.pod_uid,
        container=pod.container if pod else None,
        node=node,
        image=pod.image if pod else None,
        image_digest=pod.image_digest if pod else None,
        owner=pod.owner if pod else None,
        evidence=evidence,
        actions_requested=finding.actions_requested,
        actions_taken=finding.actions_taken,
    )


class PrintSink:
    """Output without a cluster: JSON lines or one text line per finding, flushed at once."""

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

"""In-cluster reporting: a MinerDetection and a ``MinerDetected`` Event per finding.

Each finding becomes a MinerDetection in the pod's namespace and an Event on the pod, handed
to ``minerguard.kube.reporter.Reporter``, which buffers them through API outages (bounded,
retried, drops counted).

A finding in a pod the API does not know (yet), or on a host process, is written to the
agent's own namespace with what the cgroup path told us, and its Event goes to the Node.
"""

from __future__ import annotations

import logging

from minerguard.kube import reporter, resources
from node_agent.output.metrics import AgentMetrics
from node_agent.output.report import to_detection
from node_agent.records import Finding, PodRef

log = logging.getLogger(__name__)

EVENT_REASON = "MinerDetected"
AGENT_COMPONENT = "minerguard-agent"


def event_for(finding: Finding, pod: PodRef | None, node: str | None) -> resources.EventSpec:
    """The Event that tells ``kubectl describe pod`` what the agent found."""
    signals = ", ".join(r.signal for r in finding.reasons) or "none"
    what = finding.executable or finding.command_line or "a process"
    message = (
        f"{finding.layer} detection (score {finding.score:.2f}, policy {finding.policy}): "
        f"pid {finding.pid} {what}; signals: {signals}"
    )
    if finding.actions_taken:
        message += f"; actions: {', '.join(finding.actions_taken)}"
    if pod is not None:
        involved = resources.ObjectRef("Pod", pod.name, pod.namespace, pod.uid)
    else:
        involved = resources.ObjectRef("Node", node or "unknown-node")
    return resources.EventSpec(involved, EVENT_REASON, message)


class ClusterSink:
    """A ``Sink`` writing MinerDetections and Events through a Reporter."""

    def __init__(
        self,
        writer: reporter.Reporter,
        *,
        node: str | None,
        namespace: str,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self._writer = writer
        self._node = node
        self._namespace = namespace
        self._metrics = metrics
        self.submitted = 0
        self.dropped = 0

    def emit(self, finding: Finding, pod: PodRef | None) -> None:
        """Queue the detection and its Event; never blocks on the API."""
        log.warning("%s", finding.summary)
        body = to_detection(finding, pod, self._node)
        namespace = pod.namespace if pod is not None else self._namespace
        if body.metadata.namespace != namespace:
            body = body.model_copy(
                update={"metadata": body.metadata.model_copy(update={"namespace": namespace})}
            )
        if self._metrics is not None:
            self._metrics.detected(finding.layer, (r.signal for r in finding.reasons), namespace)
        if self._writer.submit(body, event_for(finding, pod, self._node)):
            self.submitted += 1
        else:
            self.dropped += 1
            log.error("report queue full: dropped %s", body.metadata.name)

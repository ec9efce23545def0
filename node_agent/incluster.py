"""In-cluster mode: the DaemonSet's agent, with pods, policies and reports from the API.

Three background threads talk to the API server, and none of them can stall the agent's loop:
``PodCache`` (this node's pods by field selector, and namespace labels), ``PolicyWatch`` (the
MinerPolicies, swapped into the shared ``AgentPolicies`` as new generations) and ``Reporter``
(MinerDetections and Events, buffered through outages). Until the first policy list succeeds,
and whenever the cluster has none, the ``--policy-file`` policies or the embedded default
apply. The agent's own pod (from its cgroup and, once the pod list arrives, its name) is never
judged. ``/metrics`` is served on ``MINERGUARD_AGENT_METRICS_PORT`` (default 9090).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from minerguard.errors import PolicyError
from minerguard.kube import client, reporter
from minerguard.kube.pods import PodCache
from minerguard.kube.policy_watch import PolicyWatch
from node_agent import errors
from node_agent.agent import Agent
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.pods import ClusterPods
from node_agent.kernel import attribution
from node_agent.kernel.procfs import ProcFS
from node_agent.output.clusterreport import AGENT_COMPONENT, ClusterSink
from node_agent.output.metrics import AgentMetrics
from node_agent.settings import AgentSettings
from node_agent.wiring import build_agent, load_policies

log = logging.getLogger(__name__)
EXIT_USAGE = 2
EXIT_UNSUPPORTED = 3
DEFAULT_METRICS_PORT = 9090


class InCluster:
    """The agent and its API-facing parts; ``start`` then ``run``, ``close`` at the end."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        client_factory: Callable[[], client.ApiClient] | None = None,
    ) -> None:
        if not settings.node_name:
            raise ValueError("MINERGUARD_AGENT_NODE_NAME is not set (downward API spec.nodeName)")
        self.settings = settings
        self.node = settings.node_name
        factory = client_factory or (lambda: client.api_client(settings.kube_server))
        fallback = load_policies(settings)
        self.policy_set = AgentPolicies(fallback)
        self.policies = PolicyWatch(factory, fallback, on_change=self.policy_set.update)
        self.pod_cache = PodCache(factory, self.node)
        self.reporter = reporter.Reporter(
            factory, capacity=settings.report_buffer, source=AGENT_COMPONENT
        )
        self.metrics = AgentMetrics()
        self.ignore_pods: set[str] = set()
        own = self._own_pod_from_cgroup()
        if own is not None:
            self.ignore_pods.add(own)
        self.sink = ClusterSink(
            self.reporter,
            node=self.node,
            namespace=settings.namespace or "default",
            metrics=self.metrics,
        )
        self.pods = ClusterPods(self.pod_cache, wait=settings.pod_wait)
        self.agent: Agent = build_agent(
            settings,
            self.sink,
            pods=self.pods,
            policy_set=self.policy_set,
            ignore_pods=self.ignore_pods,
            pods_required=True,
        )
        live = self.metrics.live
        live.counters = self.agent.counters
        live.events_dropped = lambda: self.agent.events_dropped
        live.reports_dropped = lambda: self.reporter.dropped
        live.reports_pending = lambda: self.reporter.pending
        live.containers = lambda: self.agent.containers
        live.pods = lambda: len(self.pod_cache)
        self.metrics_port: int | None = None

    def _own_pod_from_cgroup(self) -> str | None:
        try:
            lines = ProcFS(self.settings.proc_root).cgroups(os.getpid())
        except errors.AgentError:
            return None
        return attribution.attribute_lines(lines).pod_uid

    def _find_own_pod(self) -> None:
        name, namespace = self.settings.pod_name, self.settings.namespace
        if not (name and namespace):
            return
        pod = self.pod_cache.find(namespace, name)
        if pod is not None and pod.uid not in self.ignore_pods:
            self.ignore_pods.add(pod.uid)
            log.info("not judging the agent's own pod %s/%s (%s)", namespace, name, pod.uid)

    def start(self, sync_timeout: float = 10.0) -> None:
        """Serve metrics, start the watches and wait (bounded) for the first pod list."""
        port = self.settings.metrics_port
        self.metrics_port = self.metrics.serve(
            DEFAULT_METRICS_PORT if port is None else port, self.settings.metrics_address
        )
        self.pod_cache.start()
        self.policies.start()
        if self.pod_cache.synced.wait(sync_timeout):
            self._find_own_pod()
            log.info("%d pods on node %s", len(self.pod_cache), self.node)
        else:
            log.warning("no pod list from the API within %.0fs; starting anyway", sync_timeout)

    def run(self, duration: float | None = None, stop: threading.Event | None = None) -> None:
        """The agent loop (``Agent.run``); the own-pod check runs again once synced late."""
        if not self.pod_cache.synced.is_set():
            threading.Thread(target=self._late_sync, daemon=True).start()
        self.agent.run(duration=duration, stop=stop)

    def _late_sync(self) -> None:
        if self.pod_cache.synced.wait(600):
            self._find_own_pod()

    def close(self, flush_timeout: float = 5.0) -> None:
        """Write what is queued (bounded), then stop every thread."""
        self.agent.close()
        self.reporter.close(flush_timeout)
        self.pod_cache.stop(1.0)
        self.policies.stop(1.0)
        self.metrics.close()


def run(settings: AgentSettings, stop: threading.Event | None = None) -> int:
    """Run in-cluster until ``stop`` or ``--duration``; returns the exit code."""
    try:
        incluster = InCluster(settings)
    except ValueError as err:
        log.error("%s", err)
        return EXIT_USAGE
    except PolicyError as err:
        log.error("policy: %s", err)
        return EXIT_USAGE
    except errors.KernelFeatureError as err:
        log.error("%s", err)
        return EXIT_UNSUPPORTED
    try:
        incluster.start()
    except OSError as err:
        log.error("cannot serve /metrics: %s", err)
        incluster.close(0.1)
        return EXIT_USAGE
    try:
        incluster.run(duration=settings.duration, stop=stop)
    finally:
        incluster.close()
    return 0

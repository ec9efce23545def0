"""Prometheus metrics of the agent, served on ``/metrics`` (the DaemonSet's liveness probe too).

Detections are counted as they are reported; everything else (drops, counters, CPU, RSS) is
read when scraped, so the agent's loop pays nothing for metrics between scrapes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node_agent.counters import Counters

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def self_usage(proc_self: Path = Path("/proc/self")) -> tuple[float, int]:
    """(CPU seconds used, resident bytes) of this process."""
    fields = (proc_self / "stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    rss = int((proc_self / "statm").read_text().split()[1]) * PAGE
    return cpu, rss


class _Live(Collector):
    """Values read at scrape time from the running agent."""

    def __init__(self) -> None:
        self.counters: Counters | None = None
        self.events_dropped: Callable[[], int] = lambda: 0
        self.reports_dropped: Callable[[], int] = lambda: 0
        self.reports_pending: Callable[[], int] = lambda: 0
        self.containers: Callable[[], int] = lambda: 0
        self.pods: Callable[[], int] = lambda: 0

    def collect(self) -> Iterable[Metric]:
        """The live metrics."""
        cpu, rss = self_usage()
        yield _counter(
            "minerguard_agent_events_dropped",
            "Process events lost (kernel overruns, events over the per-poll budget).",
            self.events_dropped(),
        )
        yield _counter(
            "minerguard_agent_reports_dropped",
            "Detections dropped because the report queue was full.",
            self.reports_dropped(),
        )
        yield _gauge(
            "minerguard_agent_reports_pending",
            "Detections waiting to be written.",
            self.reports_pending(),
        )
        yield _counter(
            "minerguard_agent_cpu_seconds",
            "Agent CPU time, user and system (use rate(); every scrape sees the same total).",
            cpu,
        )
        yield _gauge("minerguard_agent_rss_bytes", "Agent resident memory (bytes).", rss)
        yield _gauge("minerguard_agent_containers", "Container cgroups sampled.", self.containers())
        yield _gauge("minerguard_agent_pods", "Pods on this node known from the API.", self.pods())
        family = CounterMetricFamily(
            "minerguard_agent_operations",
            "Agent counters: races, skips, inspections, actions.",
            labels=["name"],
        )
        snapshot = self.counters.snapshot() if self.counters is not None else {}
        for name, value in sorted(snapshot.items()):
            family.add_metric([name], value)
        yield family


def _counter(name: str, doc: str, value: float) -> Metric:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> Metric:
    return GaugeMetricFamily(name, doc, value=value)


class AgentMetrics:
    """The agent's registry: a detections counter and the live collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.detections = Counter(
            "minerguard_detections",
            "Detections reported, per layer, reason signal and namespace.",
            ["layer", "reason", "namespace"],
            registry=self.registry,
        )
        self.live = _Live()
        self.registry.register(self.live)
        self._server: Any = None

    def detected(self, layer: str, signals: Iterator[str] | Iterable[str], namespace: str) -> None:
        """Count one detection under each of its reason signals."""
        for signal in dict.fromkeys(signals):
            self.detections.labels(layer=layer, reason=signal, namespace=namespace).inc()

    def serve(self, port: int, address: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on a daemon thread; returns the bound port.

        Unauthenticated, and the agent shares the node's network: bind one address (the pod
        IP the chart passes, or loopback), never every address.
        """
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

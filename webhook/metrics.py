"""Prometheus metrics of one webhook process, in a registry of its own.

Each app gets its own :class:`CollectorRegistry` (tests build several apps in one process).
Label values come from a closed set: a kind the webhook does not know is counted as
``other``, so hostile requests cannot grow the series count. With ``--workers N`` each
process serves its own numbers; scrape the pod and sum, or run one worker per pod.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from minerguard.workloads import BUILTIN
from webhook import resolve

KNOWN_KINDS = frozenset({*BUILTIN.names, "PodExecOptions", "PodAttachOptions"})
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class ReporterCounts:
    """Where the detection writer's counters are read from (the reporter, if any)."""

    written: Callable[[], int]
    dropped: Callable[[], int]
    retried: Callable[[], int]


class _ReporterCollector(Collector):
    def __init__(self, counts: Callable[[], ReporterCounts | None]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = self._counts()
        if counts is None:
            return
        for name, read, text in (
            ("written", counts.written, "MinerDetections written to the API"),
            ("dropped", counts.dropped, "MinerDetections dropped: the write queue was full"),
            ("retried", counts.retried, "Detection writes retried while the API was down"),
        ):
            family = CounterMetricFamily(f"minerguard_webhook_detections_{name}", text)
            family.add_metric([], read())
            yield family


class SessionWriter(Protocol):
    """The counters of the exec-session Events' writer (a Reporter)."""

    @property
    def events_written(self) -> int:
        """Events written."""
        ...

    @property
    def retried(self) -> int:
        """Writes retried while the API was unavailable."""
        ...

    @property
    def failed(self) -> int:
        """Writes the API refused for good."""
        ...


class _SessionWriterCollector(Collector):
    def __init__(self, writer: SessionWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[CounterMetricFamily]:
        writer = self._writer
        for name, value, text in (
            ("written", writer.events_written, "Exec-session Events written to the API"),
            ("retried", writer.retried, "Exec-session Event writes retried (API unavailable)"),
            ("failed", writer.failed, "Exec-session Events the API refused"),
        ):
            family = CounterMetricFamily(f"minerguard_webhook_exec_session_events_{name}", text)
            family.add_metric([], value)
            yield family


class Metrics:
    """The webhook's series."""

    def __init__(self, reporter: Callable[[], ReporterCounts | None] = lambda: None) -> None:
        # Process-wide: the *_created series only double the output.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reviews = Counter(
            "minerguard_webhook_reviews",
            "AdmissionReviews answered, by object kind, operation and verdict",
            ["kind", "operation", "verdict"],
            registry=r,
        )
        self.system_reviews = Counter(
            "minerguard_webhook_system_reviews",
            "AdmissionReviews answered on /validate/system (the excluded namespaces' entry: "
            "conclusive evidence only), by object kind, operation and verdict",
            ["kind", "operation", "verdict"],
            registry=r,
        )
        self.review_seconds = Histogram(
            "minerguard_webhook_review_seconds",
            "Time from request body to response, in seconds",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bad_requests = Counter(
            "minerguard_webhook_bad_requests",
            "Requests refused with 4xx because they are not AdmissionReview v1",
            ["reason"],
            registry=r,
        )
        self.internal_errors = Counter(
            "minerguard_webhook_internal_errors",
            "Reviews that failed inside the webhook (answered with a refusal)",
            registry=r,
        )
        self.resolutions = Counter(
            "minerguard_webhook_image_resolutions",
            "Image config look-ups, by result (cached, fetched, failed)",
            ["result"],
            registry=r,
        )
        self.resolution_seconds = Histogram(
            "minerguard_webhook_image_resolution_seconds",
            "Time to read one image config from its registry (cache misses)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.policies = Gauge("minerguard_webhook_policies", "MinerPolicies in force", registry=r)
        self.exec_sessions = Counter(
            "minerguard_webhook_exec_sessions",
            "kubectl exec/attach sessions reviewed, by what became of their ExecSession Event: "
            "queued, rate_limited (over the per-second cap), queue_full (the API is down or "
            "slow), unnamed (no pod named)",
            ["result"],
            registry=r,
        )
        r.register(_ReporterCollector(reporter))
        self._children: dict[tuple[str, str, str, bool], Any] = {}

    def review(
        self, kind: str, operation: str, verdict: str, seconds: float, *, system: bool = False
    ) -> None:
        """Count one answered review (``system``: on the system namespaces' entry)."""
        key = (kind, operation, verdict, system)
        child = self._children.get(key)
        if child is None:
            kind = kind if kind in KNOWN_KINDS else "other"
            operation = operation if operation in OPERATIONS else "other"
            series = self.system_reviews if system else self.reviews
            child = series.labels(kind, operation, verdict)
            if len(self._children) < 256:
                self._children[key] = child
        child.inc()
        self.review_seconds.observe(seconds)

    def exec_session(self, result: str) -> None:
        """Count one reviewed exec/attach session by what became of its Event."""
        self.exec_sessions.labels(result).inc()

    def watch_sessions(self, writer: SessionWriter) -> None:
        """Export the exec-session writer's counters (written, retried, failed)."""
        self.registry.register(_SessionWriterCollector(writer))

    def resolution(self, outcome: resolve.Outcome) -> None:
        """Count one image look-up."""
        if outcome.cached:
            self.resolutions.labels("cached").inc()
            return
        self.resolutions.labels("failed" if outcome.error else "fetched").inc()
        self.resolution_seconds.observe(outcome.seconds)

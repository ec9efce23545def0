"""The operator's Prometheus metrics, on a registry of their own (one per operator instance)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Metrics:
    """Counters a dashboard and an alert need: outcomes, actions, failures, storms."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.detections = Counter(
            "minerguard_operator_detections_total",
            "Detections handled, by resulting phase.",
            ["phase"],
            registry=r,
        )
        self.actions = Counter(
            "minerguard_operator_actions_total",
            "Enforcement steps carried out, by step.",
            ["action"],
            registry=r,
        )
        self.action_errors = Counter(
            "minerguard_operator_action_errors_total",
            "Enforcement steps that failed, by step and error type.",
            ["action", "error"],
            registry=r,
        )
        self.folded = Counter(
            "minerguard_operator_duplicates_folded_total",
            "Detections folded into an earlier one (dedup).",
            registry=r,
        )
        self.expired = Counter(
            "minerguard_operator_detections_expired_total",
            "Detections deleted after their policy's TTL.",
            registry=r,
        )
        self.circuit_trips = Counter(
            "minerguard_operator_circuit_trips_total",
            "Times a policy's rate limit switched it to alert-only.",
            ["policy"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "minerguard_operator_circuit_open",
            "1 while a policy's destructive actions are suspended.",
            ["policy"],
            registry=r,
        )
        self.scan_findings = Counter(
            "minerguard_operator_scan_findings_total",
            "Objects recorded by background scans, by policy.",
            ["policy"],
            registry=r,
        )
        self.latency = Histogram(
            "minerguard_operator_enforcement_seconds",
            "From detection creation to the end of its handling.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.investigation_latency = Histogram(
            "minerguard_operator_investigation_seconds",
            "From detection creation to its status.investigation written.",
            buckets=(*_LATENCY_BUCKETS, 30.0, 60.0),
            registry=r,
        )
        self.investigations = Counter(
            "minerguard_operator_investigations_total",
            "Investigations written, by state (Complete, Partial, Failed).",
            ["state"],
            registry=r,
        )
        self.investigation_api_calls = Counter(
            "minerguard_operator_investigation_api_calls_total",
            "Kubernetes API calls made to gather investigations.",
            registry=r,
        )
        self.investigation_registry_calls = Counter(
            "minerguard_operator_investigation_registry_calls_total",
            "Registry requests made to read image provenance (cache hits cost none).",
            registry=r,
        )
        self.policies_invalid = Gauge(
            "minerguard_operator_policies_invalid",
            "MinerPolicies whose latest generation does not compile.",
            registry=r,
        )

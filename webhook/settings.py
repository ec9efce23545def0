"""The webhook's settings: command-line flags over ``MINERGUARD_WEBHOOK_*`` variables.

Built once in :mod:`webhook.cli` and passed to :func:`webhook.app.create_app`; nothing reads
the environment anywhere else, so tests construct exactly the settings they mean.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from minerguard import workloads

MIB = 1 << 20


class PodTemplateKind(BaseModel):
    """A CRD whose objects make pods, and where they keep the pod templates.

    The chart value ``webhook.podTemplateKinds``; the chart registers the same kinds in the
    webhook's rules.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str = Field(description="API group, e.g. batch.volcano.sh.")
    version: str = Field(default="*", description="Served version(s) the rule matches.")
    kind: str = Field(min_length=1, description="Kind, e.g. Job.")
    resource: str = Field(default="", description="Plural resource name (for the chart's rule).")
    paths: tuple[str, ...] = Field(
        default=(),
        max_length=16,
        description=(
            "Paths to pod templates or pod specs, `*` or `[*]` for every item "
            "(spec.tasks[*].template); none: pod specs are searched for by shape, bounded."
        ),
    )

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            workloads.parse_path(path)
        return value


class WebhookSettings(BaseSettings):
    """Everything the webhook process needs to know; frozen once built."""

    model_config = SettingsConfigDict(env_prefix="MINERGUARD_WEBHOOK_", extra="forbid", frozen=True)

    host: str = "0.0.0.0"  # noqa: S104 - a webhook pod listens on its pod IP
    port: int = Field(default=8443, ge=1, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_reload_seconds: float = Field(
        default=10.0, gt=0, description="How often the certificate files are checked for change."
    )
    client_ca: Path | None = Field(
        default=None,
        description=(
            "PEM CA bundle: when set, every caller must present a TLS client certificate "
            "signed by it (the API server's, from its AdmissionConfiguration kubeconfig), and "
            "the audit trail records who asked as vouched for. Unset: callers are anonymous "
            "and a review's userInfo is recorded as an unauthenticated claim."
        ),
    )
    policy_files: tuple[Path, ...] = ()
    insecure_registries: tuple[str, ...] = Field(
        default=(),
        description=(
            "HOST:PORT registries read over plain HTTP; a token realm or blob redirect may use "
            "plain HTTP only to one of these (credentials never cross the network in the clear "
            "on a registry's say-so)."
        ),
    )
    registry_allowed_networks: tuple[str, ...] = Field(
        default=(),
        description=(
            "CIDRs registry lookups (registries, token realms, blob redirects) may connect to "
            "besides globally routable addresses: an in-cluster registry's range, loopback in "
            "tests. Loopback, link-local, private, shared and cluster ranges are refused "
            "otherwise; cloud metadata addresses always."
        ),
    )
    workers: int = Field(default=1, ge=1, le=64)
    kube_server: str | None = Field(
        default=None, description="Plain API server URL (tests, proxies); else in-cluster."
    )
    in_cluster: bool | None = Field(
        default=None, description="None: detect from KUBERNETES_SERVICE_HOST."
    )
    namespace: str | None = None
    pod_name: str | None = None
    admission_timeout_seconds: float = Field(
        default=10.0, gt=0, le=30, description="The API server's timeoutSeconds for the webhook."
    )
    system_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=30,
        description=(
            "The API server's timeoutSeconds for the system namespaces' entry "
            "(/validate/system, failurePolicy Ignore): reviews there are cut to fit it."
        ),
    )
    registry_timeout: float = Field(
        default=3.0, gt=0, description="Deadline for resolving one image, all registry calls."
    )
    registry_cache_ttl: float = Field(default=300.0, ge=0, description="Tag to digest TTL.")
    registry_error_ttl: float = Field(
        default=5.0, ge=0, description="How long a failed resolution is remembered."
    )
    registry_cache_size: int = Field(default=4096, ge=1)
    default_platform: str = Field(
        default="linux/amd64",
        pattern=r"^[a-z0-9]+/[a-z0-9_]+(/\w+)?$",
        description=(
            "Fills in a nodeSelector that pins only one of kubernetes.io/os and "
            "kubernetes.io/arch. Pods that pin no architecture are judged on every Linux "
            "entry of a multi-arch image, never on this one alone."
        ),
    )
    max_request_bytes: int = Field(
        default=7 * MIB,
        ge=64 * 1024,
        description=(
            "Largest /validate body read; a larger one is refused (413) before it is read. "
            "An AdmissionReview carries the object and its old version; the API server "
            "decodes at most 3 MiB of JSON per write (twice etcd's 1.5 MiB object limit), "
            "so 2 x 3 MiB plus 1 MiB for the envelope."
        ),
    )
    body_timeout: float = Field(
        default=3.0,
        gt=0,
        le=30,
        description=(
            "Seconds a request (head and body) may take to arrive from its first byte; a "
            "slower client's connection is closed. A /validate body waiting for memory is "
            "refused with 503 past it. The API server sends a review at once."
        ),
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections per worker; one beyond is closed at once.",
    )
    inflight_bytes: int = Field(
        default=96 * MIB,
        ge=MIB,
        description=(
            "Memory budget per worker for request bodies in flight, charged by their raw "
            "size while read and by an estimate of their parsed size while reviewed; a "
            "request waits (within body_timeout) for its share, or is refused with 503. A "
            "sixth is kept for bodies of at most 64 KiB (nearly every review)."
        ),
    )
    judge_words: int = Field(
        default=4_000,
        ge=100,
        description=(
            "Words (arguments, shell words, variables, file tokens) the signature engine "
            "examines per review, over every container, policy and platform; past it the "
            "rest is not examined and the answer warns so (~3 us a word: ~12 ms at most)."
        ),
    )
    judge_chars: int = Field(
        default=128 * 1024,
        ge=4096,
        description=(
            "Characters of commands, variables and files the signature engine normalises "
            "and scans per review (non-ASCII text costs ~0.25 us a character)."
        ),
    )
    max_containers: int = Field(default=2000, ge=1, description="Per object; beyond is refused.")
    read_references: bool = Field(
        default=True,
        description=(
            "Read the ConfigMaps and Secrets a pod's containers reference (env valueFrom, "
            "envFrom, mounted files the command line names) and judge their values; what "
            "cannot be read is named (the policy's onRegistryFailure decides)."
        ),
    )
    configmap_cache_bytes: int = Field(
        default=64 * MIB,
        ge=0,
        description=(
            "Characters of ConfigMap data the webhook keeps from its cluster-wide watch; "
            "past it ConfigMaps are read on demand. 0: no watch, every reference is a GET."
        ),
    )
    secret_cache_ttl: float = Field(
        default=2.0,
        ge=0,
        description=(
            "Seconds a Secret read by name is reused (a burst of replicas costs one read); "
            "also the window in which a changed Secret is judged on its previous value."
        ),
    )
    reference_timeout: float = Field(
        default=2.0, gt=0, description="Deadline for reading a review's ConfigMaps and Secrets."
    )
    pod_template_kinds: tuple[PodTemplateKind, ...] = Field(
        default=(),
        max_length=100,
        description=(
            "Workload CRDs judged besides the built-in ones (Kubernetes' workloads, Argo, Tekton, "
            "Kubeflow), as JSON: [{group, kind, paths}]. A kind's entry replaces a built-in one "
            "of the same group and kind."
        ),
    )
    policy_sync_grace: float = Field(
        default=30.0, ge=0, description="Ready on fallback policies if the cluster has not synced."
    )
    reporter_capacity: int = Field(default=1000, ge=1)
    pin_digests: bool = Field(
        default=True,
        description=(
            "/mutate pins pods' images to digests (the chart sets it from "
            "webhook.pinDigests.enabled, since /mutate also serves the creator stamp)."
        ),
    )
    stamp_creator: bool = Field(
        default=False,
        description=(
            "/mutate stamps minerguard.io/created-by on CREATE of pods and workloads: the "
            "requester's user and groups, replacing any value the object was sent with."
        ),
    )
    exec_sessions: bool = Field(
        default=True,
        description=(
            "Record every kubectl exec/attach the webhook reviews, allowed or denied, as an "
            "ExecSession Event on the pod (who, when, which container, the command)."
        ),
    )
    exec_session_rate: float = Field(
        default=20.0,
        gt=0,
        description="Exec-session Events written per second at most (beyond: dropped, counted).",
    )
    exec_session_burst: int = Field(
        default=100, ge=1, description="Exec-session Events written at once before the rate holds."
    )
    exec_session_capacity: int = Field(
        default=500,
        ge=1,
        description="Exec-session Events queued while the API is slow; beyond: dropped, counted.",
    )
    exec_session_timeout: float = Field(
        default=5.0, gt=0, description="Seconds one exec-session Event write may take."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("insecure_registries")
    @classmethod
    def _lower_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower() for v in value if v.strip())

    @field_validator("registry_allowed_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_network(v.strip(), strict=False)) for v in value if v.strip())

    def for_system_entry(self) -> WebhookSettings:
        """These settings with the system entry's timeout as the review's budget."""
        return self.model_copy(update={"admission_timeout_seconds": self.system_timeout_seconds})

    def workload_kinds(self) -> workloads.Workloads:
        """The kinds this webhook judges: the built-in table and ``pod_template_kinds``."""
        extra = [
            workloads.user_kind(k.group, k.kind, k.resource, k.paths)
            for k in self.pod_template_kinds
        ]
        return workloads.BUILTIN.with_kinds(extra) if extra else workloads.BUILTIN

    @property
    def caller_authenticated(self) -> bool:
        """Whether the TLS handshake authenticates every caller (a client CA is configured)."""
        return self.client_ca is not None

    @property
    def deadline(self) -> float:
        """Seconds a review may take: the API server's budget less a safety margin."""
        budget = self.admission_timeout_seconds
        return max(budget - min(1.0, budget / 4), 0.2)

    @property
    def reference_deadline(self) -> float:
        """Seconds reading ConfigMaps and Secrets may take inside the review's budget."""
        return min(self.reference_timeout, self.deadline * 0.8)

    @property
    def resolve_deadline(self) -> float:
        """Seconds registry resolution may take inside the review's budget."""
        return min(self.registry_timeout, self.deadline * 0.8)

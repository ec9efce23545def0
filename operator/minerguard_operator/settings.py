"""The operator's settings: flags override ``MINERGUARD_OPERATOR_*`` environment variables.

``namespace`` is where the operator itself runs (the chart sets it from the downward API); the
namespaces it watches are ``namespaces`` (``--namespace``, repeatable), all when empty.
"""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """Built once by :func:`minerguard_operator.cli.main`, handed to the handlers in kopf's memo."""

    model_config = SettingsConfigDict(env_prefix="MINERGUARD_OPERATOR_", extra="forbid")

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces whose detections are handled; all if empty."
    )
    namespace: str | None = Field(default=None, description="The operator's own namespace.")
    standalone: bool = Field(default=False, description="No peering (a single replica).")
    peering_name: str | None = Field(
        default=None, description="kopf peering object; standalone when unset."
    )
    priority: int = Field(
        default_factory=lambda: secrets.randbelow(1_000_000) + 1,
        description=(
            "Peering priority; the highest one is active. Random by default: kopf pauses every "
            "peer that shares the highest priority, so replicas must not all have the same one."
        ),
    )
    liveness_endpoint: str | None = Field(
        default=None, description="e.g. http://0.0.0.0:8081/healthz"
    )
    kube_server: str | None = Field(
        default=None, description="Plain-http API URL (tests, proxies); else in-cluster/kubeconfig."
    )
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="0/unset: off.")
    metrics_address: str = "0.0.0.0"  # noqa: S104 - a pod's metrics port is meant to be scraped
    housekeeping_seconds: float = Field(
        default=30.0, gt=0, description="How often policy counts, circuits and TTLs are checked."
    )
    background_scan: bool = Field(default=True, description="Scan workloads on policy changes.")
    log_format: Literal["plain", "full", "json"] = "json"
    verbose: bool = False
    workers: int = Field(default=16, ge=1, description="Threads running the synchronous handlers.")
    isolation_label_guarded: bool = Field(
        default=False,
        description=(
            "The cluster lets only the operator change a pod's minerguard.io/isolated label (a "
            "ValidatingAdmissionPolicy). Without that guard whoever may patch the pod can undo "
            "its isolation, so Isolate is reported as not guaranteed and falls through to "
            "DeletePod where the policy asks for it."
        ),
    )
    creator_stamps_trusted: bool = Field(
        default=False,
        description=(
            "The minerguard.io/created-by stamp is the webhook's and nobody else's: the stamping "
            "webhook refuses what it cannot stamp (failurePolicy Fail) and a "
            "ValidatingAdmissionPolicy refuses every later change of the stamp. Without both a "
            "stamp is whatever the creator wrote, so the investigation reports it as a claim, "
            "never as who created the workload."
        ),
    )
    exec_sessions_guarded: bool = Field(
        default=False,
        description=(
            "Only the webhook may write exec-session Events (a ValidatingAdmissionPolicy). "
            "Without that guard whoever may create Events could invent a session to blame "
            "someone else, so a correlated session is reported as Likely, never Certain."
        ),
    )
    watch_timeout: float = Field(
        default=600.0, gt=0, description="Seconds before a watch restarts."
    )
    investigate: bool = Field(
        default=True,
        description=(
            "Investigate each new detection (status.investigation): the image's provenance, "
            "who started it and how, what restarts it, which doors were open."
        ),
    )
    investigation_workers: int = Field(
        default=4, ge=1, le=64, description="Investigations gathered at once (own threads)."
    )
    registry_insecure: list[str] = Field(
        default_factory=list, description="Registries (HOST:PORT) read over plain HTTP."
    )
    registry_allowed_networks: list[str] = Field(
        default_factory=list,
        description=(
            "CIDRs registry reads may connect to besides public addresses (an in-cluster "
            "registry; loopback in tests). Cloud metadata addresses never (SSRF guard)."
        ),
    )
    registry_timeout: float = Field(
        default=3.0, gt=0, le=60, description="Seconds one registry request may take."
    )
    max_tags: int = Field(
        default=100, ge=0, le=10_000, description="Tags of a repository compared with a digest."
    )
    max_pods_listed: int = Field(
        default=5000,
        ge=0,
        description="Pods listed cluster-wide to find others running the same digest (bound).",
    )
    read_pull_secrets: bool = Field(
        default=False,
        description=(
            "Read the pod's image pull secrets to read private registries. Off by default: it "
            "lets the operator read secrets in every namespace; registries are then read "
            "anonymously and a refusal is said in the investigation's unknowns."
        ),
    )

"""The webhook's settings: command-line flags over ``MINERGUARD_WEBHOOK_*`` variables.

Built once in :mod:`webhook.cli` and passed to :func:`webhook.app.create_app`; nothing reads
the environment anywhere else, so tests construct exactly the settings they mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1 << 20


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
    policy_files: tuple[Path, ...] = ()
    insecure_registries: tuple[str, ...] = Field(
        default=(), description="HOST:PORT registries read over plain HTTP."
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
    max_request_bytes: int = Field(default=16 * MIB, ge=64 * 1024)
    max_containers: int = Field(default=2000, ge=1, description="Per object; beyond is refused.")
    policy_sync_grace: float = Field(
        default=30.0, ge=0, description="Ready on fallback policies if the cluster has not synced."
    )
    reporter_capacity: int = Field(default=1000, ge=1)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("insecure_registries")
    @classmethod
    def _lower_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower() for v in value if v.strip())

    @property
    def deadline(self) -> float:
        """Seconds a review may take: the API server's budget less a safety margin."""
        budget = self.admission_timeout_seconds
        return max(budget - min(1.0, budget / 4), 0.2)

    @property
    def resolve_deadline(self) -> float:
        """Seconds registry resolution may take inside the review's budget."""
        return min(self.registry_timeout, self.deadline * 0.8)

"""Agent settings: environment (prefix ``MINERGUARD_AGENT_``) overridden by CLI flags.

Built in ``cli.main`` and passed down explicitly; nothing reads the environment later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    """Everything the agent can be told; defaults suit a DaemonSet on a typical node."""

    model_config = SettingsConfigDict(env_prefix="MINERGUARD_AGENT_", extra="forbid")

    no_cluster: bool = Field(
        default=False, description="Run without a cluster: no API, findings printed."
    )
    policy_file: Path | None = Field(default=None, description="MinerPolicy YAML file.")
    proc_root: Path = Path("/proc")
    cgroup_root: Path = Path("/sys/fs/cgroup")
    duration: float | None = Field(default=None, gt=0, description="Exit after this long.")
    output: Literal["text", "json"] = "text"
    node_name: str | None = Field(default=None, description="This node (downward API).")
    namespace: str | None = Field(default=None, description="The agent's namespace.")
    pod_name: str | None = Field(default=None, description="The agent's own pod.")
    kube_server: str | None = Field(
        default=None, description="API server URL (default: in-cluster config, then kubeconfig)."
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Prometheus /metrics port (in-cluster: 9090)."
    )
    metrics_address: str = Field(
        default="127.0.0.1",
        description=(
            "Address /metrics binds to. The agent runs on the host network, so 0.0.0.0 would "
            "publish unauthenticated metrics on every node address; the chart passes the pod "
            "IP (status.podIP, the node's IP under hostNetwork)."
        ),
    )
    file_readers: int = Field(
        default=2, ge=1, le=16, description="Threads reading container files (configs, exe)."
    )
    file_read_deadline: float = Field(
        default=0.25,
        gt=0,
        description="Seconds a container file read may take before it is abandoned and counted.",
    )
    exe_scan_deadline: float = Field(
        default=1.0,
        gt=0,
        description="Seconds scanning an executable's bytes may take (~0.1 s for 16 MiB).",
    )
    proc_connector: bool = Field(
        default=True, description="Use the proc connector (off: /proc rescans only)."
    )
    kill_process: bool = Field(default=True, description="Allow the KillProcess action here.")
    fanotify: bool = Field(default=False, description="Refuse execs with fanotify (exec gate).")
    pod_wait: float = Field(
        default=0.5, ge=0, description="How long an exec waits for the pod watch to name a pod."
    )
    verdict_cache: int = Field(
        default=4096, ge=0, description="Exec verdicts remembered per (exe, argv, env, policy)."
    )
    sample_interval: float = Field(default=5.0, gt=0, description="Cgroup sampling period.")
    rescan_interval: float = Field(default=10.0, gt=0, description="/proc rescan period.")
    discover_every: int = Field(default=3, ge=1, description="Discover cgroups every N ticks.")
    max_inspect: int = Field(default=16, ge=1, description="Busy containers inspected per tick.")
    event_source: Literal["auto", "connector", "rescan"] = "auto"
    include_host_processes: bool | None = Field(
        default=None, description="Judge processes outside pods (default: only without a cluster)."
    )
    act_on_host_processes: bool = False
    exec_gate: bool = Field(default=False, description="Refuse execs with fanotify.")
    exec_gate_mounts: list[Path] = Field(
        default_factory=list,
        description="Mounts gated besides every covered container's root (e.g. host paths).",
    )
    content_scan: bool = Field(
        default=True, description="Scan executables' bytes for miner strings (once per file)."
    )
    exec_gate_deadline: float = Field(default=0.05, gt=0)
    resolve_pool_hosts: bool = Field(
        default=False, description="Resolve pool host names with the node's DNS."
    )
    pool_resolve_interval: float = Field(default=600.0, gt=0)
    network: bool = Field(
        default=False,
        description=(
            "The network layer: pods' DNS answers, new connections and (where a policy opts in)"
            " first bytes, and the nftables block. Needs CAP_NET_ADMIN, CAP_NET_RAW and the"
            " host network namespace."
        ),
    )
    network_block: bool = Field(
        default=True,
        description="Allow this node's nftables table where a policy blocks pool traffic here.",
    )
    network_first_bytes: bool = Field(
        default=True, description="Allow reading first payloads where a policy opts in."
    )
    network_learn_networks: list[str] = Field(
        default_factory=list,
        description=(
            "Non-public ranges whose addresses pool-domain answers may still teach (only public"
            " addresses are learned otherwise: a pod's own resolver could name any address)."
        ),
    )
    network_queue: int = Field(
        default=1024, ge=1, description="Network findings held for the agent loop; more drop."
    )
    max_exec_per_poll: int = Field(default=2048, ge=1)
    report_buffer: int = Field(default=1000, ge=1, description="Detections held during outages.")
    status_interval: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"

    @property
    def gate_enabled(self) -> bool:
        """Whether the fanotify exec gate was asked for (either setting)."""
        return self.exec_gate or self.fanotify

    @property
    def judge_host_processes(self) -> bool:
        """Whether processes outside pods are judged."""
        if self.include_host_processes is not None:
            return self.include_host_processes
        return self.no_cluster

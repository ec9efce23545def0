"""The records the agent's layers hand to each other: reasons, connections, pods, findings.

Plain frozen dataclasses, kept free of the API models so the hot path builds them cheaply;
``output.report`` turns a ``Finding`` into a ``MinerDetection`` only when it is written or
printed. They live here, below every layer, because each is made by one layer and read by
others: a ``Reason`` comes from judging and is printed by output, a ``Connection`` is read from
the kernel and carried in a finding, a ``PodRef`` is looked up for judging and reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from minerguard.api import detection, investigation

TCP_ESTABLISHED = 0x01
"""Kernel TCP states (``include/net/tcp_states.h``) as /proc/net/tcp shows them."""
TCP_LISTEN = 0x0A

LAYER_EXEC = "Exec"
LAYER_BEHAVIOUR = "Behaviour"
LAYER_NETWORK = "Network"


@dataclass(frozen=True, slots=True)
class Reason:
    """One contribution to a score: signal name, what was seen, and its weight."""

    signal: str
    detail: str
    weight: float


@dataclass(frozen=True, slots=True)
class Connection:
    """One TCP socket of a process."""

    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    state: int
    inode: int
    host: str | None = None
    """The pool host the address was learned or resolved from, where known."""
    protocol: str | None = None
    """What the first bytes showed (a stratum method, the TLS server name), where read."""

    @property
    def established(self) -> bool:
        """Whether the connection is up."""
        return self.state == TCP_ESTABLISHED

    @property
    def remote(self) -> str:
        """``host:port`` (IPv6 bracketed), as evidence shows it."""
        if ":" in self.remote_address:
            return f"[{self.remote_address}]:{self.remote_port}"
        return f"{self.remote_address}:{self.remote_port}"


@dataclass(frozen=True, slots=True)
class PodRef:
    """The pod a finding belongs to, where the API told us."""

    namespace: str
    name: str
    uid: str
    container: str | None = None
    image: str | None = None
    image_digest: str | None = None
    node: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    owner: detection.OwnerReference | None = None


@dataclass(frozen=True, slots=True)
class ProcessLink:
    """One ancestor of a reported process: who started it, as /proc showed it."""

    pid: int
    executable: str | None
    command_line: str | None
    started_at: float | None
    """Epoch seconds (boot time plus the process's start ticks); None where unknown."""
    exited: bool | None = None
    """True for an ancestor that had exited when the agent looked: remembered from process
    events (``judge.lineage``), not read from /proc; None for one read live."""


@dataclass(frozen=True, slots=True)
class Ancestry:
    """Who started a reported process and where its executable came from.

    Read only when a finding is about to be reported (``judge.ancestry``), never per exec.
    """

    lineage: tuple[ProcessLink, ...]
    """Ancestors in the container, parent first, up to its first process or the exec'd root."""
    entry: investigation.Entry
    executable_origin: investigation.ExecutableOrigin
    downloaded_by: str | None = None
    why: str = ""
    """Why ``entry`` is Unknown, for a person (empty otherwise)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """What one layer concluded about one process or container, before it is reported."""

    layer: str
    score: float
    reasons: tuple[Reason, ...]
    policy: str
    mode: str
    observed_at: float
    cgroup: str
    pod_uid: str | None = None
    container_id: str | None = None
    pid: int | None = None
    start_ticks: int | None = None
    executable: str | None = None
    command_line: str | None = None
    cpu_fraction: float | None = None
    connections: tuple[Connection, ...] = ()
    lookups: tuple[str, ...] = ()
    """Pool domains resolved, ``name -> addresses`` (network layer)."""
    actions_requested: tuple[str, ...] = ()
    actions_taken: tuple[str, ...] = field(default=())
    latency_s: float | None = None
    ancestry: Ancestry | None = None
    """Filled just before the finding is acted on and reported (never on the hot path)."""

    @property
    def summary(self) -> str:
        """One line for logs and text output."""
        where = f"pod {self.pod_uid} container {self.container_id}" if self.pod_uid else "host"
        signals = ", ".join(r.signal for r in self.reasons)
        return (
            f"{self.layer} detection score={self.score:.2f} pid={self.pid} "
            f"exe={self.executable} {where} cgroup={self.cgroup} signals=[{signals}]"
        )

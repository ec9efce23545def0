"""A finding: what one layer of the agent concluded about one process or container.

Kept free of the API models so the hot path builds plain frozen records; ``report`` turns them
into ``MinerDetection`` objects only when they are written or printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node_agent.netconn import Connection
from node_agent.scoring import Reason

LAYER_EXEC = "Exec"
LAYER_BEHAVIOUR = "Behaviour"
LAYER_NETWORK = "Network"


@dataclass(frozen=True, slots=True)
class Finding:
    """One detection before it becomes a MinerDetection."""

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
    actions_requested: tuple[str, ...] = ()
    actions_taken: tuple[str, ...] = field(default=())
    latency_s: float | None = None

    @property
    def summary(self) -> str:
        """One line for logs and text output."""
        where = f"pod {self.pod_uid} container {self.container_id}" if self.pod_uid else "host"
        signals = ", ".join(r.signal for r in self.reasons)
        return (
            f"{self.layer} detection score={self.score:.2f} pid={self.pid} "
            f"exe={self.executable} {where} cgroup={self.cgroup} signals=[{signals}]"
        )

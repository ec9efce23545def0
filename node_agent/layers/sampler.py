"""The behaviour layer: sample every container's cgroup, score, and look closer at busy ones.

Each tick reads four counters per container (~40 µs per file); discovery runs every few
ticks. Only containers that are busy (or already suspicious) get process-level inspection:
their processes' CPU ticks, the top process's executable and connections (reading
/proc/PID/net/tcp costs milliseconds, so this is bounded per tick).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from minerguard import compiled_policy
from node_agent import errors
from node_agent.counters import Counters
from node_agent.judge import agent_policy, masquerade, scoring
from node_agent.judge.agent_policy import AgentPolicies, AgentPolicy
from node_agent.judge.inspect_process import ProcessSnapshot, snapshot
from node_agent.judge.lineage import Lineage
from node_agent.judge.pods import PodLookup
from node_agent.judge.poolhosts import PoolAddresses
from node_agent.kernel import attribution, cgroups, netconn
from node_agent.kernel.gpu import GpuMonitor
from node_agent.kernel.procfs import ProcFS
from node_agent.records import LAYER_BEHAVIOUR, Connection, Finding, Reason

MAX_PIDS_PER_CONTAINER = 64
TOP_PROCESSES = 2
REARM_FRACTION = 0.5


@dataclass(slots=True)
class Tracked:
    """Per-container state between ticks (mutable, owned by the sampler)."""

    cgroup: cgroups.ContainerCgroup
    limits: cgroups.Limits
    policies: tuple[AgentPolicy, ...]
    """Every policy that covers the container and does not exempt it (never empty)."""
    thresholds: scoring.Thresholds
    """The most sensitive of their thresholds, which the state is kept under."""
    pool_ports: frozenset[int]
    """Their pool ports together."""
    state: scoring.ContainerState = field(default_factory=scoring.ContainerState)
    facts: scoring.ProcessFacts = field(default_factory=scoring.ProcessFacts)
    reported: compiled_policy.Strictness | None = None
    """The strictness of the policy the last finding named; None until one is made (re-armed)."""
    ticks: dict[int, int] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)
    top: ProcessSnapshot | None = None
    connections: tuple[Connection, ...] = ()

    @property
    def alerted(self) -> bool:
        """Whether a finding was made and the score has not fallen back since."""
        return self.reported is not None

    def assign(self, policies: list[AgentPolicy]) -> None:
        """Judge the container under ``policies`` from now on."""
        self.policies = tuple(policies)
        self.thresholds = agent_policy.sensitive(policies)
        self.pool_ports = frozenset().union(*(p.pool_ports for p in policies))


class Sampler:
    """Owns the per-container scoring state; ``tick`` returns behaviour findings."""

    def __init__(
        self,
        reader: cgroups.CgroupReader,
        proc: ProcFS,
        policies: AgentPolicies,
        *,
        pods: PodLookup,
        lineage: Lineage,
        counters: Counters,
        pool_addresses: PoolAddresses,
        gpu: GpuMonitor | None = None,
        discover_every: int = 3,
        max_inspect: int = 16,
        ignore_pods: AbstractSet[str] = frozenset(),
        pods_required: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._reader = reader
        self._proc = proc
        self._policies = policies
        self._pods = pods
        self._lineage = lineage
        self._counters = counters
        self._pools = pool_addresses
        self._gpu = gpu
        self._discover_every = max(discover_every, 1)
        self._max_inspect = max_inspect
        self._wall = wall
        self._ignore_pods = ignore_pods
        self._pods_required = pods_required
        self._generation = policies.generation
        self._ticks = 0
        self.tracked: dict[str, Tracked] = {}

    def tick(self, now: float) -> list[Finding]:
        """One sampling round at monotonic time ``now``."""
        if self._ticks % self._discover_every == 0:
            self._discover()
        self._ticks += 1
        for key, item in list(self.tracked.items()):
            try:
                sample = self._reader.sample(item.cgroup, now)
            except errors.CgroupGone:
                self._counters.add("cgroup_gone")
                del self.tracked[key]
                continue
            item.state = scoring.advance(
                item.state, sample, item.limits.quota_cores, item.thresholds
            )
        gpu = self._gpu_by_container()
        candidates = [t for t in self.tracked.values() if scoring.busy(t.state) or t.alerted]
        candidates.sort(key=lambda t: -t.state.busy_seconds)
        for item in candidates[: self._max_inspect]:
            self._inspect(item, now, gpu.get(item.cgroup.attribution.key))
        if len(candidates) > self._max_inspect:
            self._counters.add("inspect_deferred", len(candidates) - self._max_inspect)
        findings: list[Finding] = []
        for item in self.tracked.values():
            found = self._judge(item)
            if found is not None:
                findings.append(found)
        return findings

    def _discover(self) -> None:
        found = self._reader.discover()
        for key in self.tracked.keys() - found.keys():
            del self.tracked[key]
        refresh = self._policies.generation != self._generation
        self._generation = self._policies.generation
        for key, cgroup in found.items():
            item = self.tracked.get(key)
            if item is not None and not refresh:
                continue
            policies = self._policies_for(cgroup.attribution)
            if not policies:
                self.tracked.pop(key, None)
                continue
            if item is None:
                item = Tracked(
                    cgroup=cgroup,
                    limits=self._reader.limits(cgroup),
                    policies=(),
                    thresholds=scoring.Thresholds(),
                    pool_ports=frozenset(),
                )
                self.tracked[key] = item
            item.assign(policies)

    def _policies_for(self, owner: attribution.Attribution) -> list[AgentPolicy]:
        """Every policy covering the container and not exempting it; none: not sampled."""
        if owner.pod_uid is not None and owner.pod_uid in self._ignore_pods:
            return []
        pod = self._pods.lookup(owner.pod_uid, owner.container_id)
        if pod is None and owner.pod_uid is not None and self._pods_required:
            self._counters.add("sample_pod_unknown")  # tried again at the next discovery
            return []
        applying, _ = self._policies.applying(pod)
        return applying

    def _gpu_by_container(self) -> dict[str, float]:
        if self._gpu is None or not self._gpu.available:
            return {}
        out: dict[str, float] = {}
        for pid, use in self._gpu.sample().items():
            try:
                lines = self._proc.cgroups(pid)
            except errors.AgentError:
                continue
            key = attribution.attribute_lines(lines).key
            out[key] = max(out.get(key, 0.0), use.sm_percent)
        return out

    def _inspect(self, item: Tracked, now: float, gpu_percent: float | None) -> None:
        pids = self._reader.pids(item.cgroup)[:MAX_PIDS_PER_CONTAINER]
        deltas: list[tuple[int, int]] = []
        ticks: dict[int, int] = {}
        for pid in pids:
            try:
                stat = self._proc.stat(pid)
            except errors.AgentError:
                self._counters.add("inspect_gone")
                continue
            ticks[pid] = stat.cpu_ticks
            self._lineage.observe(pid, stat.ppid)
            deltas.append((stat.cpu_ticks - item.ticks.get(pid, 0), pid))
        item.ticks = ticks
        deltas.sort(reverse=True)
        pool_ports: list[str] = []
        pool_hosts: list[str] = []
        long_lived: list[str] = []
        masq: list[Reason] = []
        launcher: str | None = None
        seen_inodes: set[int] = set()
        conns_kept: list[Connection] = []
        item.top = None
        for _delta, pid in deltas[:TOP_PROCESSES]:
            try:
                snap = snapshot(self._proc, pid, with_env=False, with_config=False)
                conns = netconn.outbound(netconn.connections(self._proc, pid))
            except errors.AgentError:
                self._counters.add("inspect_gone")
                continue
            item.top = item.top or snap
            masq.extend(
                masquerade.reasons(
                    snap.comm, snap.argv, snap.exe, snap.kernel_thread, upper_layer=snap.upper_layer
                )
            )
            detached = self._lineage.detached(pid)
            if detached is not None and launcher is None:
                launcher = (
                    f"pid {pid} ({snap.comm}) runs on after its parent {detached.parent} exited"
                )
            for conn in conns:
                seen_inodes.add(conn.inode)
                first = item.first_seen.setdefault(conn.inode, now)
                host = self._pools.host_of(conn.remote_address)
                if host is not None:
                    pool_hosts.append(f"{host} ({conn.remote})")
                    conns_kept.append(conn)
                elif conn.remote_port in item.pool_ports:
                    pool_ports.append(conn.remote)
                    conns_kept.append(conn)
                if now - first >= item.thresholds.window_seconds / 4:
                    long_lived.append(conn.remote)
                    if conn not in conns_kept:
                        conns_kept.append(conn)
        item.first_seen = {i: t for i, t in item.first_seen.items() if i in seen_inodes}
        item.connections = tuple(conns_kept[:16])
        item.facts = scoring.ProcessFacts(
            pool_ports=tuple(dict.fromkeys(pool_ports)),
            pool_hosts=tuple(dict.fromkeys(pool_hosts)),
            long_lived=tuple(dict.fromkeys(long_lived))[:4],
            launcher=launcher,
            masquerade=tuple(masq),
            gpu_percent=gpu_percent,
        )

    def _judge(self, item: Tracked) -> Finding | None:
        """A finding naming the strictest policy the score now reaches, once per strictness.

        Scored once under the most sensitive thresholds; each policy detects at its own
        threshold. A weaker policy's earlier finding never mutes a stricter one reached later.
        """
        thresholds = item.thresholds
        result = scoring.score(item.state, item.facts, thresholds)
        if not result.over(thresholds):
            if item.alerted and result.score < thresholds.score_threshold * REARM_FRACTION:
                item.reported = None
            return None
        detecting = [p for p in item.policies if result.over(p.thresholds)]
        policy = agent_policy.strictest(detecting)
        strictness = compiled_policy.strictness(policy.compiled)
        if item.reported is not None and strictness <= item.reported:
            return None
        item.reported = strictness
        self._counters.add("behaviour_detections")
        owner = item.cgroup.attribution
        top = item.top
        return Finding(
            layer=LAYER_BEHAVIOUR,
            score=result.score,
            reasons=result.reasons,
            policy=policy.name,
            mode=policy.mode,
            observed_at=self._wall(),
            cgroup=owner.cgroup_path,
            pod_uid=owner.pod_uid,
            container_id=owner.container_id,
            pid=top.pid if top else None,
            start_ticks=top.start_ticks if top else None,
            executable=top.exe.path if top and top.exe else None,
            command_line=top.command_line[:4096] if top else None,
            cpu_fraction=result.mean_fraction,
            connections=item.connections,
            actions_requested=agent_policy.requested(detecting),
        )

"""The behaviour layer: sample every container's cgroup, score, and look closer at busy ones.

Each tick reads four counters per container (~40 µs per file); discovery runs every few
ticks, and at the next tick when the exec layer saw a process in a container not yet
tracked (``notice``), so a new pod is sampled within one interval. Containers that are busy,
use a twentieth of a core or more (a miner on an oversubscribed node gets little of what it
wants), are already suspicious, or just started a suspicious process get process-level
inspection: their processes' CPU ticks; for the top ones, their demand (runnable time from
schedstat, syscalls, switches, disk I/O), executable and connections (reading
/proc/PID/net/tcp costs milliseconds, so this is bounded per tick). A process seen for the
first time is measured from its start, so a miner is judged at its first inspection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from minerguard import compiled_policy
from node_agent import errors
from node_agent.counters import Counters
from node_agent.judge import agent_policy, gpu_profile, launchers, masquerade, scoring
from node_agent.judge.agent_policy import AgentPolicies, AgentPolicy
from node_agent.judge.earned import EarnedVerdicts
from node_agent.judge.inspect_process import ProcessSnapshot, snapshot
from node_agent.judge.lineage import Lineage
from node_agent.judge.pods import PodLookup
from node_agent.judge.poolhosts import PoolAddresses
from node_agent.kernel import attribution, cgroups, netconn
from node_agent.kernel.gpu import GpuMonitor, GpuUse
from node_agent.kernel.procfs import CLOCK_TICKS, ProcFS, TaskCounters
from node_agent.records import LAYER_BEHAVIOUR, Connection, Finding, Reason

MAX_PIDS_PER_CONTAINER = 64
TOP_PROCESSES = 2
REARM_FRACTION = 0.5
INSPECT_CORES = 0.05
"""A container using this much of a core is inspected even when not busy against its limit."""


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
    counters: dict[int, tuple[int, TaskCounters, float]] = field(default_factory=dict)
    """pid → (start ticks, its demand counters, when read) for the top processes."""
    gpu_memory: dict[int, int] = field(default_factory=dict)
    """GPU pid → its GPU memory at the last sample."""
    gpu_framework: dict[int, str | None] = field(default_factory=dict)
    """GPU pid → the ML framework it maps (read once per process)."""

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
        self._discover_soon = False
        self._noticed: set[str] = set()
        self.earned = EarnedVerdicts()
        """Verdicts behaviour earned, for the exec layer to apply to re-spawned copies."""
        self.tracked: dict[str, Tracked] = {}

    def notice(self, snap: ProcessSnapshot) -> None:
        """The exec layer saw ``snap`` start in a pod: sample its container at the next tick.

        A container not yet tracked is discovered then (not at the next periodic discovery);
        a new container, or a process running hidden code or through a loader, is inspected
        at that tick whatever its CPU so far.
        """
        owner = snap.owner
        if not owner.in_pod:
            return
        if owner.key not in self.tracked:
            self._discover_soon = True
            self._noticed.add(owner.key)
        elif snap.hidden_code is not None or snap.launcher is not None:
            self._noticed.add(owner.key)

    def tick(self, now: float) -> list[Finding]:
        """One sampling round at monotonic time ``now``."""
        if self._ticks % self._discover_every == 0 or self._discover_soon:
            self._discover()
            self._discover_soon = False
        self._ticks += 1
        noticed, self._noticed = self._noticed, set()
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
        candidates = [
            t
            for key, t in self.tracked.items()
            if scoring.busy(t.state)
            or t.alerted
            or key in noticed
            or key in gpu
            or (t.state.recent and t.state.recent[-1].cores >= INSPECT_CORES)
        ]
        # Noticed containers first (a new pod, hidden code): the bound never defers them.
        candidates.sort(
            key=lambda t: (
                t.cgroup.attribution.key not in noticed,
                -(t.state.busy_seconds + t.state.demand_seconds),
            )
        )
        uptime = self._uptime() if candidates else None
        for item in candidates[: self._max_inspect]:
            self._inspect(item, now, gpu.get(item.cgroup.attribution.key), uptime)
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

    def _gpu_by_container(self) -> dict[str, GpuUse]:
        """The busiest GPU process of each container (NVML by host PID; empty without NVML)."""
        if self._gpu is None or not self._gpu.available:
            return {}
        out: dict[str, GpuUse] = {}
        for pid, use in self._gpu.sample().items():
            try:
                lines = self._proc.cgroups(pid)
            except errors.AgentError:
                continue
            key = attribution.attribute_lines(lines).key
            if key not in out or use.sm_percent > out[key].sm_percent:
                out[key] = use
        return out

    def _gpu_facts(
        self, item: Tracked, facts: scoring.ProcessFacts, use: GpuUse | None
    ) -> scoring.ProcessFacts:
        """``facts`` with GPU utilisation, memory now and before, and the framework mapped."""
        if use is None:
            item.gpu_memory = {}
            return facts
        before = item.gpu_memory.get(use.pid)
        item.gpu_memory = {use.pid: use.memory_bytes}
        if use.pid not in item.gpu_framework:
            try:
                item.gpu_framework = {use.pid: gpu_profile.framework(self._proc.maps(use.pid))}
            except errors.AgentError:
                item.gpu_framework = {use.pid: "unreadable maps"}  # never "compute-only"
        return replace(
            facts,
            gpu_percent=use.sm_percent,
            gpu_memory_bytes=use.memory_bytes,
            gpu_memory_before=before,
            gpu_framework=item.gpu_framework[use.pid],
        )

    def _uptime(self) -> float | None:
        try:
            return self._proc.uptime()
        except errors.AgentError:
            return None

    def _demand(
        self, item: Tracked, pid: int, start_ticks: int, now: float, uptime: float | None
    ) -> scoring.Demand | None:
        """One interval of ``pid``'s demand: since the last read, else since its start."""
        try:
            counters = self._proc.task_counters(pid)
        except errors.AgentError:
            self._counters.add("inspect_gone")
            return None
        before = item.counters.get(pid)
        item.counters[pid] = (start_ticks, counters, now)
        if before is not None and before[0] == start_ticks and now > before[2]:
            return _interval(before[1], counters, now - before[2], now, since_start=False)
        if uptime is None:
            return None
        age = uptime - start_ticks / CLOCK_TICKS
        if age < scoring.MIN_AGE_SECONDS:
            return None
        zero = TaskCounters(0, 0, 0, 0, 0, 0, counters.threads)
        return _interval(zero, counters, age, now, since_start=True)

    def _inspect(
        self, item: Tracked, now: float, gpu: GpuUse | None, uptime: float | None = None
    ) -> None:
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
        hidden: str | None = None
        seen_inodes: set[int] = set()
        conns_kept: list[Connection] = []
        demands: list[scoring.Demand] = []
        item.top = None
        for _delta, pid in deltas[:TOP_PROCESSES]:
            try:
                snap = snapshot(self._proc, pid, with_env=False, with_config=False)
                conns = netconn.outbound(netconn.connections(self._proc, pid))
            except errors.AgentError:
                self._counters.add("inspect_gone")
                continue
            demand = self._demand(item, pid, snap.start_ticks, now, uptime)
            if demand is not None:
                demands.append(demand)
            item.top = item.top or snap
            if hidden is None and snap.hidden_code is not None:
                hidden = f"pid {pid} ({snap.comm}) {snap.hidden_code}"
            masq.extend(
                masquerade.reasons(
                    snap.comm,
                    snap.program_argv,
                    snap.exe,
                    snap.kernel_thread,
                    upper_layer=snap.upper_layer,
                )
            )
            if snap.launcher is not None:
                masq.extend(launchers.launcher_reasons(snap.comm, (), None, snap.launcher))
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
        item.counters = {p: c for p, c in item.counters.items() if p in ticks}
        if demands:
            busiest = max(demands, key=lambda d: d.cores)
            item.state = scoring.advance_demand(
                item.state, busiest, item.limits.quota_cores, item.thresholds
            )
        item.first_seen = {i: t for i, t in item.first_seen.items() if i in seen_inodes}
        item.connections = tuple(conns_kept[:16])
        facts = scoring.ProcessFacts(
            pool_ports=tuple(dict.fromkeys(pool_ports)),
            pool_hosts=tuple(dict.fromkeys(pool_hosts)),
            long_lived=tuple(dict.fromkeys(long_lived))[:4],
            launcher=launcher,
            masquerade=tuple(masq),
            hidden_code=hidden,
        )
        item.facts = self._gpu_facts(item, facts, gpu)

    def _judge(self, item: Tracked) -> Finding | None:
        """A finding naming the strictest policy the score now reaches, once per strictness.

        Scored once under the most sensitive thresholds; each policy detects at its own
        threshold. A weaker policy's earlier finding never mutes a stricter one reached later.
        """
        thresholds = item.thresholds
        result = scoring.score(item.state, item.facts, thresholds, item.limits.quota_cores)
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
        finding = Finding(
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
        if top is not None and owner.pod_uid is not None:
            try:
                identity = self._proc.exe_identity(top.pid)
            except errors.AgentError:
                return finding
            self.earned.remember(owner.pod_uid, identity, top.argv, finding)
        return finding


def _interval(
    before: TaskCounters, after: TaskCounters, seconds: float, now: float, *, since_start: bool
) -> scoring.Demand:
    """The rates between two readings of one process's counters."""
    syscalls = (
        max(after.syscalls - before.syscalls, 0) / seconds
        if after.syscalls is not None and before.syscalls is not None
        else None
    )
    io = (
        max(after.io_bytes - before.io_bytes, 0) / seconds
        if after.io_bytes is not None and before.io_bytes is not None
        else None
    )
    run = max(after.run_ns - before.run_ns, 0) / 1e9
    wait = max(after.wait_ns - before.wait_ns, 0) / 1e9
    return scoring.Demand(
        end=now,
        seconds=seconds,
        cores=(run + wait) / seconds,
        run_cores=run / seconds,
        syscalls_per_s=syscalls,
        voluntary_per_s=max(after.voluntary - before.voluntary, 0) / seconds,
        io_per_s=io,
        since_start=since_start,
    )

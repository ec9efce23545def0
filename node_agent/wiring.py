"""Build an Agent from settings: choose the event source, load policies, assemble the parts.

Kept apart from ``cli`` so tests and benchmarks build the same agent with injected roots,
sinks and sources.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path

from minerguard.compiled_policy import CompiledPolicy, default_policy, load_policy_file
from minerguard.signatures.content import builtin_scanner
from node_agent import errors
from node_agent.agent import Agent, Schedule
from node_agent.counters import Counters
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.ancestry import Investigator
from node_agent.judge.exe_content import ExecutableContent
from node_agent.judge.learned_pools import LearnedPools
from node_agent.judge.lineage import Lineage
from node_agent.judge.pods import NoPods, PodLookup
from node_agent.judge.poolhosts import PoolAddresses
from node_agent.kernel import attribution, container_files, dns_capture, nftables
from node_agent.kernel.cgroups import CgroupReader
from node_agent.kernel.connector import ProcConnector
from node_agent.kernel.conntrack import ConntrackEvents
from node_agent.kernel.dns_capture import PacketCapture
from node_agent.kernel.events import EventSource
from node_agent.kernel.fanotify import ExecGate
from node_agent.kernel.gpu import GpuMonitor
from node_agent.kernel.netns_pods import NetnsPods
from node_agent.kernel.procfs import ProcFS
from node_agent.kernel.rescan import RescanSource
from node_agent.layers import gating
from node_agent.layers.execwatch import ExecWatcher
from node_agent.layers.network import NetworkLayer, learnable_in
from node_agent.layers.sampler import Sampler
from node_agent.output.report import Sink
from node_agent.output.response import ProcessKiller
from node_agent.settings import AgentSettings

log = logging.getLogger(__name__)


def load_policies(settings: AgentSettings) -> list[CompiledPolicy]:
    """The policy file's policies, or the embedded default; raises PolicyError."""
    if settings.policy_file is not None:
        return load_policy_file(settings.policy_file)
    return [default_policy()]


def choose_source(settings: AgentSettings, proc: ProcFS) -> tuple[EventSource, RescanSource]:
    """The proc connector where it works (and was not refused), else a /proc rescan."""
    rescan = RescanSource(proc, interval=settings.rescan_interval)
    if (
        settings.event_source == "rescan"
        or not settings.proc_connector
        or (
            settings.no_cluster  # in-cluster, --proc-root is the host's /proc (hostPID)
            and settings.proc_root != Path("/proc")
            and settings.event_source != "connector"
        )
    ):
        return rescan, rescan
    try:
        return ProcConnector(), rescan
    except errors.KernelFeatureError as err:
        if settings.event_source == "connector":
            raise
        log.warning("proc connector unavailable (%s); falling back to /proc rescans", err)
        return rescan, rescan


def build_network(
    settings: AgentSettings,
    *,
    policy_set: AgentPolicies,
    pods: PodLookup,
    proc: ProcFS,
    counters: Counters,
    learned: LearnedPools,
    killer: ProcessKiller,
) -> NetworkLayer | None:
    """The network layer with every kernel source this node allows; None when none works.

    Each source degrades on its own: no packet socket means no lookups or first bytes, no
    ctnetlink means no connection events, no ``nft`` means seeing without blocking.
    """
    dns: PacketCapture | None = None
    flows: ConntrackEvents | None = None
    nft: nftables.NftTable | None = None
    try:
        dns = PacketCapture(dns_capture.dns_filter())
    except errors.KernelFeatureError as err:
        log.warning("pods' DNS answers will not be seen: %s", err)
    try:
        flows = ConntrackEvents()
    except errors.KernelFeatureError as err:
        log.warning("pods' new connections will not be seen: %s", err)
    try:
        nft = nftables.NftTable()  # also what makes the host track connections (its ct rules)
    except nftables.NftError as err:
        log.warning(
            "pool traffic will not be blocked on this node, and new connections are seen only"
            " where something else (kube-proxy, the CNI) runs conntrack: %s",
            err,
        )
    if dns is None and flows is None:
        return None

    def open_first_bytes() -> PacketCapture:
        return PacketCapture(dns_capture.first_bytes_filter(), snaplen=1024)

    return NetworkLayer(
        policy_set,
        pods,
        NetnsPods(proc),
        learned,
        counters,
        proc=proc,
        dns=dns,
        flows=flows,
        open_first_bytes=open_first_bytes if settings.network_first_bytes else None,
        nft=nft,
        block=settings.network_block,
        take_slot=killer.take_slot,
        learnable=learnable_in(settings.network_learn_networks),
        queue_size=settings.network_queue,
    )


def build_agent(
    settings: AgentSettings,
    sink: Sink,
    *,
    pods: PodLookup | None = None,
    source: EventSource | None = None,
    policies: list[CompiledPolicy] | None = None,
    pool_addresses: PoolAddresses | None = None,
    policy_set: AgentPolicies | None = None,
    ignore_pods: AbstractSet[str] = frozenset(),
    pods_required: bool = False,
) -> Agent:
    """Assemble an agent; ``source``/``pods``/``policies`` may be injected.

    In-cluster mode passes a ``policy_set`` it keeps current, the agent's own pod UID(s) in
    ``ignore_pods`` (a set it may fill later) and ``pods_required`` (a container whose pod the
    API does not know yet is not sampled until it does).
    """
    proc = ProcFS(settings.proc_root)
    counters = Counters()
    lineage = Lineage()
    if policy_set is None:
        policy_set = AgentPolicies(policies if policies is not None else load_policies(settings))
    lookup: PodLookup = pods if pods is not None else NoPods()
    ignore = frozenset({os.getpid()})
    rescan: RescanSource | None
    if source is None:
        source, rescan = choose_source(settings, proc)
        if source is rescan:
            rescan = None  # the source already is the rescan
    else:
        rescan = RescanSource(proc, interval=settings.rescan_interval)
    addresses = pool_addresses or PoolAddresses()
    learned = LearnedPools() if settings.network else None
    if learned is not None and addresses.learned is None:
        addresses.learned = learned  # the sampler sees addresses pods resolved for pools
    if pool_addresses is None and settings.resolve_pool_hosts:
        addresses.start(list(policy_set.pool_hosts), settings.pool_resolve_interval)
    gpu = GpuMonitor()
    if not gpu.available:
        log.info("GPU data unavailable: %s", gpu.reason)
    content = ExecutableContent(builtin_scanner()) if settings.content_scan else None
    gate: ExecGate | None = None
    on_container: Callable[[int, attribution.Attribution], bool] | None = None
    if settings.gate_enabled:
        containers = gating.GatedContainers(proc, policy_set, lookup, counters)
        gate = ExecGate(
            settings.exec_gate_mounts,
            gating.decider(policy_set, content or ExecutableContent(builtin_scanner()), containers),
            deadline=settings.exec_gate_deadline,
        )
        mark = gate.mark

        def on_container(pid: int, owner: attribution.Attribution) -> bool:
            return containers.cover(pid, owner, mark)

    files = container_files.FileReader(
        settings.file_readers,
        settings.file_read_deadline,
        counters,
        scan_deadline_s=settings.exe_scan_deadline,
    )
    if (why := container_files.unavailable()) is not None:
        log.warning("config files named by processes will not be read: %s", why)
    cgroup_reader = CgroupReader(settings.cgroup_root)
    sampler = Sampler(
        cgroup_reader,
        proc,
        policy_set,
        pods=lookup,
        lineage=lineage,
        counters=counters,
        pool_addresses=addresses,
        gpu=gpu if gpu.available else None,
        discover_every=settings.discover_every,
        max_inspect=settings.max_inspect,
        ignore_pods=ignore_pods,
        pods_required=pods_required,
    )
    watcher = ExecWatcher(
        proc,
        policy_set,
        pods=lookup,
        lineage=lineage,
        counters=counters,
        include_host=settings.judge_host_processes,
        ignore_pids=ignore,
        ignore_pods=ignore_pods,
        content=content,
        files=files,
        on_container=on_container,
        on_process=sampler.notice,
        earned=sampler.earned,
        max_per_poll=settings.max_exec_per_poll,
        verdict_cache=settings.verdict_cache,
    )
    killer = ProcessKiller(
        proc,
        policy_set,
        counters,
        act_on_host=settings.act_on_host_processes,
        ignore_pids=ignore,
        ignore_pods=ignore_pods,
        kill_enabled=settings.kill_process,
    )
    network = None
    if learned is not None:
        network = build_network(
            settings,
            policy_set=policy_set,
            pods=lookup,
            proc=proc,
            counters=counters,
            learned=learned,
            killer=killer,
        )
    if gate is not None:
        gate.start()
    if network is not None:
        network.start()
    return Agent(
        source,
        watcher,
        sampler,
        killer,
        sink,
        pods=lookup,
        counters=counters,
        schedule=Schedule(
            sample_interval=settings.sample_interval,
            rescan_interval=settings.rescan_interval,
            status_interval=settings.status_interval,
        ),
        rescan=rescan,
        gate=gate,
        files=files,
        network=network,
        ancestry=Investigator(proc, lineage, counters, cgroups=cgroup_reader),
    )

"""The network layer: pods' pool lookups, connections and first bytes, and the node's block.

One thread reads three kernel sources and never blocks the agent loop:

- DNS answers leaving towards pods (``kernel.dns_capture``): a pool domain anywhere in the
  answer's chain is a lookup finding, and its addresses are learned (``LearnedPools``, which
  the behaviour sampler reads too) and, where a policy blocks on this node, put into the
  ``inet minerguard`` nftables set with the answer's TTL;
- new flows (``kernel.conntrack``): a pod's connection to a learned pool address or a pool port;
- the first payload of pods' TCP flows (opt-in, ``spec.network.inspectFirstBytes``): a mining
  protocol on any port, or a TLS server name under a pool domain.

Findings wait in a bounded queue the agent loop drains (``drain``), so reports go through the
same killer and sink as every other layer; when the loop falls behind, findings over the bound
are dropped and counted (``network_findings_dropped``). Each read takes at most a budget of
packets per source; what the kernel could not queue is counted from its own statistics.

Scores: each kind of evidence counts once per pod within ``window`` seconds, and a finding
carries the sum. Under a policy's threshold it is recorded as an ``Audit`` finding (the operator
only alerts), at or over it with the policy's mode and actions, like the other layers.

Blocking (``spec.network.blockPoolTraffic``) on the node when ``judge.network.node_blocks``
says so: Enforce policies put their covered pods' addresses into the table's ``covered`` sets
and their pool ports into ``pool_ports``; Audit ones only record what would have been blocked.
Adding newly learned addresses to the set is a destructive action charged to the blocking
policy's rate limit (the circuit breaker the KillProcess action shares): past it, the finding
says the block was suppressed and nothing is added.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from minerguard.cache import BoundedCache
from node_agent import errors
from node_agent.counters import Counters
from node_agent.judge import agent_policy
from node_agent.judge import network as judge
from node_agent.judge.agent_policy import AgentPolicies, AgentPolicy
from node_agent.judge.learned_pools import LearnedPools
from node_agent.judge.pods import PodLookup
from node_agent.kernel import nftables
from node_agent.kernel.conntrack import ConntrackEvents, Flow
from node_agent.kernel.dns_capture import PacketCapture
from node_agent.kernel.netns_pods import NetnsPods, PodNetns
from node_agent.kernel.procfs import ProcFS
from node_agent.records import LAYER_NETWORK, Connection, Finding, PodRef, Reason

log = logging.getLogger(__name__)

BLOCK_ACTION = "BlockPoolTraffic"
REPEAT_SECONDS = 60.0
"""The same evidence from the same pod is reported once per this many seconds."""
DNS_DEDUP_SECONDS = 2.0
COALESCE_SECONDS = 0.005
"""Pause after a busy round, so packets are read in batches."""
COVER_RENEW_SECONDS = 60.0
"""How often covered pods' set elements are renewed (they expire after COVER_SECONDS)."""
BYPASS_CHECK_SECONDS = 10.0
"""How often the table's counters are compared with what the capture saw."""
"""An answer seen on two interfaces (bridge and port) within this long counts once."""


@dataclass(frozen=True, slots=True)
class PodView:
    """One pod as the network layer judges it, rebuilt on each pod refresh or policy change."""

    netns: PodNetns
    ref: PodRef | None
    policies: tuple[AgentPolicy, ...]
    ports: frozenset[int]
    enforce_block: tuple[AgentPolicy, ...]
    audit_block: tuple[AgentPolicy, ...]
    inspect: bool


def _network_spec(policy: AgentPolicy) -> tuple[bool, str, bool]:
    net = policy.compiled.spec.network
    return net.block_pool_traffic, net.enforcement.value, net.inspect_first_bytes


def node_blocking(policy: AgentPolicy) -> bool:
    """Whether ``policy`` asks this node's table to block (Enforce or Audit alike)."""
    block, enforcement, _inspect = _network_spec(policy)
    return block and judge.node_blocks(enforcement, policy.compiled.network_enforcement)


def learnable_in(networks: Sequence[str]) -> Callable[[str], bool]:
    """Addresses a pool answer may teach: globally routable, or inside ``networks``.

    A pod can run its own resolver and answer a pool name with any address it likes; without
    this rule, one answer naming the API server's or a neighbour's address would block every
    covered pod from it. Pools are on the internet, so only public addresses are learned
    unless the operator lists a private range on purpose.
    """
    allowed = [ipaddress.ip_network(n, strict=False) for n in networks]

    def learnable(address: str) -> bool:
        if judge.is_global(address):
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in allowed)

    return learnable


class NetworkLayer:
    """Reads the sources in its own thread; findings queue up for the agent loop."""

    def __init__(
        self,
        policies: AgentPolicies,
        pods: PodLookup,
        netns: NetnsPods,
        learned: LearnedPools,
        counters: Counters,
        *,
        proc: ProcFS,
        dns: PacketCapture | None,
        flows: ConntrackEvents | None,
        open_first_bytes: Callable[[], PacketCapture] | None = None,
        nft: nftables.NftTable | None = None,
        block: bool = True,
        take_slot: Callable[[AgentPolicy], bool] = lambda _p: True,
        learnable: Callable[[str], bool] = judge.is_global,
        queue_size: int = 1024,
        window: float = 120.0,
        refresh_interval: float = 2.0,
        budget: int = 256,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._policies = policies
        self._pods = pods
        self._netns = netns
        self.learned = learned
        self.counters = counters
        self._proc = proc
        self._dns = dns
        self._flows = flows
        self._first: PacketCapture | None = None
        self._open_first = open_first_bytes
        self._nft = nft
        self._block = block
        self._take_slot = take_slot
        self._learnable = learnable
        self._queue_size = queue_size
        self._window = window
        self._refresh_interval = refresh_interval
        self._budget = budget
        self._clock = clock
        self._wall = wall
        self._queue: list[Finding] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._views: dict[str, PodView] = {}
        self._view_generation = -1
        self._next_refresh = float("-inf")
        self._matchers: dict[str, judge.DomainMatcher] = {}
        self._prefilter = judge.LabelPrefilter(())
        self._pod_v4: frozenset[bytes] = frozenset()
        self._interest: tuple[frozenset[int], frozenset[str]] | None = None
        self._evidence: BoundedCache[str, dict[str, Reason]] = BoundedCache(4096, ttl=window)
        self._reported: BoundedCache[tuple[str, str, str], None] = BoundedCache(
            16384, ttl=REPEAT_SECONDS
        )
        self._dns_seen: BoundedCache[tuple[str, int, int, int], None] = BoundedCache(
            8192, ttl=DNS_DEDUP_SECONDS
        )
        self._flows_seen: BoundedCache[tuple[str, int, str, int], None] = BoundedCache(65536)
        self._in_set: BoundedCache[str, None] = BoundedCache(65536)
        self._nft_state: tuple[frozenset[str], frozenset[str], frozenset[int]] | None = None
        self.pod_packets = 0
        self.bypass: str | None = None
        self._next_bypass_check = float("-inf")
        self._covered_renew_at = float("-inf")

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Install the table (when there is one) and start reading."""
        if self._nft is not None:
            self._nft.install(())
        self.refresh(force=True)
        self._thread = threading.Thread(target=self._loop, name="mg-network", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop reading, close the sources and remove the table (only ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for source in (self._dns, self._flows, self._first):
            if source is not None:
                source.close()
        if self._nft is not None:
            try:
                self._nft.remove()
            except nftables.NftError as err:
                log.error("removing the nftables table failed: %s", err)

    def drain(self) -> list[Finding]:
        """Findings queued since the last call."""
        with self._lock:
            out, self._queue = self._queue, []
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(0.2)
            except errors.AgentError as err:
                self.counters.add("network_errors")
                log.warning("network layer: %s", err)
                self._stop.wait(1.0)
            except Exception:  # the thread's top level: count, log, keep going
                self.counters.add("network_errors")
                log.exception("network layer failed a round")
                self._stop.wait(1.0)

    def step(self, timeout: float) -> None:
        """One round: wait up to ``timeout`` for any source, handle a budget of each.

        After a busy round it pauses ``COALESCE_SECONDS`` so the next one finds a batch: one
        ``select`` per batch instead of per packet, for a few milliseconds of latency.
        """
        sources = [s for s in (self._dns, self._flows, self._first) if s is not None]
        if self._clock() >= self._next_refresh:
            self.refresh()
        if not sources:
            self._stop.wait(timeout)
            return
        ready, _, _ = select.select(sources, [], [], timeout)
        handled = 0
        for source in ready:
            if source is self._dns and self._dns is not None:
                answers = self._dns.read(self._budget)
                handled += len(answers)
                self.counters.add("network_dns_answers", len(answers))
                for packet in answers:
                    self.handle_dns(packet)
            elif source is self._flows and self._flows is not None:
                flows = self._flows.read(self._budget)
                handled += len(flows)
                for flow in flows:
                    self.handle_flow(flow)
            elif source is self._first and self._first is not None:
                payloads = self._first.read(self._budget)
                handled += len(payloads)
                for packet in payloads:
                    self.handle_first_bytes(packet)
        if handled:
            self._stop.wait(COALESCE_SECONDS)

    # -- pods and the table --------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Rescan pods' namespaces, rebuild views, bring the table's sets up to date."""
        self._next_refresh = self._clock() + self._refresh_interval
        self._netns.refresh(force=True)
        if self._policies.generation != self._view_generation:
            self._matchers = {
                p.name: judge.DomainMatcher(p.pool_hosts) for p in self._policies.policies
            }
            self._prefilter = judge.LabelPrefilter(self._policies.pool_hosts)
            self._view_generation = self._policies.generation
        views: dict[str, PodView] = {}
        for pod in self._netns.pods():
            view = self._view(pod)
            for address in pod.addresses:
                views[address] = view
        self._views = views
        self._pod_v4 = frozenset(socket.inet_aton(a) for a in views if "." in a and ":" not in a)
        self._first_bytes_wanted(any(v.inspect for v in views.values()))
        for source in (self._dns, self._first):
            if source is not None:
                dropped = source.kernel_drops()
                if dropped:
                    self.counters.add("network_packets_dropped", dropped)
        if self._flows is not None and self._flows.overruns:
            self.counters.add("network_flow_overruns", self._flows.overruns)
            self._flows.overruns = 0
        if self._nft is not None:
            self._sync_table(force)
        self._sync_interest()

    def _sync_interest(self) -> None:
        """Tell the kernel which new flows to hand over: to pool ports or learned addresses."""
        if self._flows is None:
            return
        state = (self._policies.pool_ports, frozenset(self.learned.addresses()))
        if state == self._interest:
            return
        try:
            self._flows.interest(*state)
            self._interest = state
        except errors.KernelFeatureError as err:
            self.counters.add("network_errors")
            log.warning("new flows are filtered in user space only: %s", err)

    def _first_bytes_wanted(self, wanted: bool) -> None:
        """Open the first-bytes capture only while a policy covering a pod here asks for it.

        Its filter copies every pushed TCP segment the host receives, so it costs even when no
        pod is inspected: closed, it costs nothing.
        """
        if wanted and self._first is None and self._open_first is not None:
            try:
                self._first = self._open_first()
            except errors.KernelFeatureError as err:
                self._open_first = None
                log.warning("first bytes of pod flows will not be read: %s", err)
        elif not wanted and self._first is not None:
            self._first.close()
            self._first = None

    def _view(self, pod: PodNetns) -> PodView:
        ref = self._pods.lookup(pod.pod_uid, pod.container_id)
        applying, _exempted = self._policies.applying(ref)
        enforce = tuple(p for p in applying if node_blocking(p) and p.compiled.enforcing)
        audit = tuple(p for p in applying if node_blocking(p) and not p.compiled.enforcing)
        return PodView(
            netns=pod,
            ref=ref,
            policies=tuple(applying),
            ports=frozenset().union(*(p.pool_ports for p in applying)),
            enforce_block=enforce,
            audit_block=audit,
            inspect=any(_network_spec(p)[2] for p in applying),
        )

    def _sync_table(self, force: bool) -> None:
        assert self._nft is not None  # noqa: S101 - only called with a table
        covered = frozenset(a for a, v in self._views.items() if v.enforce_block and self._block)
        pods = frozenset(self._views)
        blocking = (p for v in self._views.values() for p in v.enforce_block)
        ports = frozenset().union(*(p.pool_ports for p in blocking))
        state = (covered, pods, ports)
        now = self._clock()
        renew = now >= self._covered_renew_at
        if state == self._nft_state and not force and not renew:
            self._check_bypass()
            return
        try:
            previous = self._nft_state
            if renew:
                self._covered_renew_at = now + COVER_RENEW_SECONDS
                previous = (frozenset(("renew",)), *previous[1:]) if previous else None
            if previous is None or previous[2] != ports:
                self._nft.set_ports(ports)
            if previous is None or previous[0] != covered:
                self._nft.set_members("covered", covered)
            if previous is None or previous[1] != pods:
                self._nft.set_members("pods", pods)
            self._nft_state = state
        except nftables.NftError as err:
            self.counters.add("network_nft_errors")
            log.error("updating the nftables table failed: %s", err)
        self._check_bypass()

    def _check_bypass(self) -> None:
        """Compare pod packets seen at the interfaces with pod flows netfilter counted.

        Reads the table's counters (an ``nft`` run) at most every ``BYPASS_CHECK_SECONDS``.
        """
        if not self._block or self._nft is None:
            return
        now = self._clock()
        if now < self._next_bypass_check:
            return
        self._next_bypass_check = now + BYPASS_CHECK_SECONDS
        if not any(v.enforce_block for v in self._views.values()):
            return
        try:
            counted = self._nft.counters().pod_flows
        except nftables.NftError:
            return
        if nftables.bypassed(self.pod_packets, counted):
            if self.bypass is None:
                self.bypass = (
                    f"pod traffic bypasses the host's netfilter ({self.pod_packets} pod packets"
                    " seen at the interfaces, no pod flow counted by nftables): eBPF host"
                    " routing? The node's table does not protect these pods"
                )
                self.counters.add("network_bypass")
                log.error("%s", self.bypass)
        else:
            self.bypass = None

    # -- DNS -----------------------------------------------------------------------------------

    def handle_dns(self, data: bytes) -> None:
        """One captured DNS answer: a pool lookup finding, learned and blocked addresses.

        Benign answers (no pool domain's label in their bytes) cost one regex search and a
        set lookup; only the rest are decoded. (``step`` counts them, a batch at a time.)
        """
        if len(data) >= 20 and data[0] >> 4 == 4 and data[16:20] in self._pod_v4:
            self.pod_packets += 1
        if not self._prefilter.may_match(data):
            return
        try:
            packet = judge.parse_packet(data)
            message = judge.parse_dns(judge.dns_payload(packet))
        except judge.DecodeError:
            self.counters.add("network_dns_malformed")
            return
        key = (packet.dst, packet.dport, message.ident, hash(data))
        if key in self._dns_seen:
            return
        self._dns_seen.put(key, None)
        view = self._views.get(packet.dst)
        if view is None:
            found = self._netns.pod_of(packet.dst)
            if found is None:
                return
            view = self._view(found)
            self._views[packet.dst] = view
        matching = [p for p in view.policies if self._matches(p, message)]
        if not matching:
            return
        lookup = judge.pool_lookup(message, self._matchers[matching[0].name])
        if lookup is None:
            return
        self.counters.add("network_pool_lookups")
        taken = self._learn(lookup, view)
        self._sync_interest()
        reason = Reason("pool-lookup", f"resolved {lookup.evidence}", judge.W_POOL_LOOKUP)
        self._report(view, reason, matching, packet.src, lookups=(lookup.evidence,), taken=taken)

    def _matches(self, policy: AgentPolicy, message: judge.DnsMessage) -> bool:
        matcher = self._matchers.get(policy.name)
        return matcher is not None and judge.pool_lookup(message, matcher) is not None

    def _learn(self, lookup: judge.PoolLookup, view: PodView) -> tuple[str, ...]:
        addresses = [a for a in lookup.addresses if self._learnable(a)]
        refused = len(lookup.addresses) - len(addresses)
        if refused:
            self.counters.add("network_addresses_not_learned", refused)
        if not addresses:
            return ()
        lifetimes = [(a, self.learned.learn(a, lookup.domain, lookup.ttl)) for a in addresses]
        taken: list[str] = []
        if view.audit_block and not view.enforce_block:
            taken.append(f"{BLOCK_ACTION} (Audit): would block {', '.join(addresses)}")
        if self._nft is None or not self._block:
            return tuple(taken)
        blockers = [p for p in self._policies.policies if node_blocking(p) and p.compiled.enforcing]
        if not blockers:
            return tuple(taken)
        new = [a for a in addresses if a not in self._in_set]
        if new and not self._take_slot(agent_policy.strictest(blockers)):
            self.counters.add("actions_rate_limited")
            taken.append(f"{BLOCK_ACTION} suppressed: rate limit ({', '.join(new)} not blocked)")
            lifetimes = [(a, s) for a, s in lifetimes if a in self._in_set]
        try:
            self._nft.learn(lifetimes)
        except nftables.NftError as err:
            self.counters.add("network_nft_errors")
            taken.append(f"{BLOCK_ACTION} failed: {err}")
            return tuple(taken)
        for address, seconds in lifetimes:
            self._in_set.put(address, None)
            del seconds
        if lifetimes and view.enforce_block:
            shown = ", ".join(a for a, _ in lifetimes)
            taken.append(f"{BLOCK_ACTION}: {shown} blocked for covered pods on this node")
        return tuple(taken)

    # -- flows ---------------------------------------------------------------------------------

    def handle_flow(self, flow: Flow) -> None:
        """One new flow: a covered pod reaching a pool address or port."""
        view = self._views.get(flow.src)
        if view is None or flow.protocol not in (6, 17):
            return
        self.counters.add("network_pod_flows")
        host = self.learned.host_of(flow.dst)
        reasons: list[Reason] = []
        matching: list[AgentPolicy] = []
        if host is not None:
            reasons.append(
                Reason(
                    "pool-address",
                    f"connected to {host} ({_remote(flow.dst, flow.dport)})",
                    judge.W_POOL_ADDRESS,
                )
            )
            matching = [p for p in view.policies if self._matchers[p.name].match(host)]
        if flow.protocol == 6 and flow.dport in view.ports:
            remote = _remote(flow.dst, flow.dport)
            reasons.append(Reason("pool-port", f"connected to {remote}", judge.W_POOL_PORT))
            matching += [
                p for p in view.policies if flow.dport in p.pool_ports and p not in matching
            ]
        if not reasons or not matching:
            return
        self.counters.add("network_pool_connections")
        taken: tuple[str, ...] = ()
        if view.audit_block and not view.enforce_block:
            taken = (f"{BLOCK_ACTION} (Audit): would have been blocked",)
        connection = Connection(
            flow.src, flow.sport, flow.dst, flow.dport, 0x02, 0, host=host, protocol=None
        )
        for reason in reasons[1:]:
            self._remember(view, reason)
        self._report(view, reasons[0], matching, flow.src, connection=connection, taken=taken)

    # -- first bytes ---------------------------------------------------------------------------

    def handle_first_bytes(self, data: bytes) -> None:
        """A TCP payload from a pod: its flow's first is fingerprinted, later ones ignored."""
        try:
            packet = judge.parse_packet(data)
        except judge.DecodeError:
            self.counters.add("network_segments_malformed")
            return
        view = self._views.get(packet.src)
        if view is None or not view.inspect:
            return
        key = (packet.src, packet.sport, packet.dst, packet.dport)
        if key in self._flows_seen:
            return
        self._flows_seen.put(key, None)
        self.pod_packets += 1
        self.counters.add("network_first_payloads")
        inspecting = [p for p in view.policies if _network_spec(p)[2]]
        protocol = judge.fingerprint(packet.payload)
        if protocol is not None:
            reason = Reason(
                "mining-protocol",
                f"{protocol} to {_remote(packet.dst, packet.dport)}",
                judge.W_FIRST_BYTES,
            )
            matching = inspecting
        else:
            name = judge.client_hello_sni(packet.payload)
            if name is None:
                return
            matching = [p for p in inspecting if self._matchers[p.name].match(name)]
            if not matching:
                return
            protocol = f"TLS SNI {name}"
            reason = Reason(
                "pool-sni", f"TLS to {name} ({_remote(packet.dst, packet.dport)})", judge.W_POOL_SNI
            )
        connection = Connection(
            packet.src, packet.sport, packet.dst, packet.dport, 0x01, 0, protocol=protocol
        )
        self._report(view, reason, matching, packet.src, connection=connection)

    # -- findings ------------------------------------------------------------------------------

    def _remember(self, view: PodView, reason: Reason) -> dict[str, Reason]:
        uid = view.netns.pod_uid
        seen = dict(self._evidence.get(uid) or {})
        seen.setdefault(reason.signal, reason)
        seen[reason.signal] = reason
        self._evidence.put(uid, seen)
        return seen

    def _report(
        self,
        view: PodView,
        reason: Reason,
        matching: Sequence[AgentPolicy],
        local: str,
        *,
        connection: Connection | None = None,
        lookups: tuple[str, ...] = (),
        taken: Iterable[str] = (),
    ) -> None:
        seen = self._remember(view, reason)
        reasons = (reason, *(r for s, r in seen.items() if s != reason.signal))
        score = sum(r.weight for r in reasons)
        detecting = [p for p in matching if score >= p.thresholds.score_threshold]
        named = agent_policy.strictest(detecting or list(matching))
        mode = named.mode if detecting else "Audit"
        key = (view.netns.pod_uid, reason.signal + mode, reason.detail)
        actions = tuple(taken)
        if key in self._reported and not actions:
            self.counters.add("network_repeats")
            return
        self._reported.put(key, None)
        pid = None
        start_ticks = None  # only a finding over the threshold may name a process to kill
        if connection is not None:
            pid = self._netns.owner(view.netns, local, connection.local_port)
            if pid is not None and detecting:
                try:
                    start_ticks = self._proc.stat(pid).start_ticks
                except errors.AgentError:
                    pid = None
        executable = None
        if pid is not None:
            try:
                exe = self._proc.exe(pid)
                executable = exe.path if exe else None
            except errors.AgentError:
                executable = None
        finding = Finding(
            layer=LAYER_NETWORK,
            score=score,
            reasons=reasons,
            policy=named.name,
            mode=mode,
            observed_at=self._wall(),
            cgroup=view.netns.cgroup,
            pod_uid=view.netns.pod_uid,
            container_id=view.netns.container_id,
            pid=pid,
            start_ticks=start_ticks,
            executable=executable,
            connections=(connection,) if connection else (),
            lookups=lookups,
            actions_requested=agent_policy.requested(detecting) if detecting else (),
            actions_taken=actions,
        )
        self.counters.add("network_detections")
        with self._lock:
            if len(self._queue) >= self._queue_size:
                self.counters.add("network_findings_dropped")
                return
            self._queue.append(finding)


def _remote(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"

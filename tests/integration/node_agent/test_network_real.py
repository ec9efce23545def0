"""The network layer on the real kernel: pods in network namespaces routed through this host.

Topology (names random per run): three pod-shaped namespaces, each behind a veth pair whose
host side routes to an "internet" namespace holding a stub DNS server, a stub stratum pool
(ports 3333 and 443) and a benign endpoint; this host forwards between them, as a CNI's
routed veths do. Each pod's "pause" process sits in a kubelet-shaped cgroup, so the agent
attributes the namespace to a pod exactly as on a node.

- ``tenant`` pod: covered by an Enforce policy that blocks pool traffic on the node;
- ``trusted`` pod: selected by the same policy, but exempt (its namespace is in the policy's
  exemptions);
- ``observed`` pod: covered by an Audit policy that blocks and inspects first bytes.

Policies select namespaces by label, not ``excludedNamespaces``: excluded namespaces get an
alert-only system view of the policy, which is not what these cases are about.

No packet leaves the namespaces this module creates; ``net.ipv4.ip_forward`` is restored.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node_agent.counters import Counters
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.learned_pools import LearnedPools
from node_agent.kernel import dns_capture, nftables
from node_agent.kernel.conntrack import ConntrackEvents
from node_agent.kernel.dns_capture import PacketCapture
from node_agent.kernel.netns_pods import NetnsPods
from node_agent.kernel.procfs import ProcFS
from node_agent.layers.network import NetworkLayer, learnable_in
from node_agent.output.response import ProcessKiller
from node_agent.records import Finding, PodRef
from tests.support import policy, wait_for

from .conftest import Pod, require_root, require_tool

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

POOL_NAME = "xmr.supportxmr.com"
SECOND_POOL_NAME = "gulf.moneroocean.stream"
BENIGN_NAME = "www.example.com"

SERVERS = r"""
import socket, struct, sys, threading, time
dns_ip, pool_ip, benign_ip, second_ip = sys.argv[1:5]
answers = {sys.argv[5]: pool_ip, sys.argv[6]: benign_ip, sys.argv[7]: second_ip}

def qname(data, pos):
    labels = []
    while data[pos]:
        labels.append(data[pos + 1:pos + 1 + data[pos]].decode()); pos += 1 + data[pos]
    return ".".join(labels), pos + 1

def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((dns_ip, 53))
    while True:
        data, peer = s.recvfrom(512)
        name, end = qname(data, 12)
        address = answers.get(name)
        head = struct.pack("!HHHHHH", struct.unpack("!H", data[:2])[0], 0x8180, 1,
                           1 if address else 0, 0, 0)
        body = data[12:end + 4]
        if address:
            body += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 120, 4) + socket.inet_aton(address)
        s.sendto(head + body, peer)

def serve(ip, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port)); s.listen(512)
    while True:
        c, _ = s.accept()
        threading.Thread(target=talk, args=(c,), daemon=True).start()

def talk(c):
    c.settimeout(2)
    try:
        if c.recv(4096):
            c.sendall(b'{"id":1,"result":true,"error":null}\n')
        time.sleep(0.2)
    except OSError:
        pass
    c.close()

threading.Thread(target=dns, daemon=True).start()
for ip in (pool_ip, benign_ip, second_ip):
    for port in (3333, 443, 8080):
        threading.Thread(target=serve, args=(ip, port), daemon=True).start()
print("ready", flush=True)
time.sleep(600)
"""

CLIENT = r"""
import socket, ssl, struct, sys, time
dns_ip = sys.argv[1]
out = []
for step in sys.argv[2:]:
    kind, _, arg = step.partition("=")
    if kind == "resolve":
        q = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in arg.split(".")) + b"\0\0\1\0\1"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
        s.sendto(q, (dns_ip, 53)); data = s.recv(512)
        out.append(socket.inet_ntoa(data[-4:]) if struct.unpack("!H", data[6:8])[0] else "none")
        continue
    host, port = arg.rsplit(":", 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=3)
    except OSError as err:
        out.append(f"refused:{err.errno}")
        continue
    try:
        if kind in ("stratum", "hold"):
            s.sendall(b'{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}\n')
            s.recv(100)
            time.sleep(0.05 if kind == "stratum" else 2.0)
        elif kind == "tls":
            ctx = ssl.create_default_context(); ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            try:
                ctx.wrap_socket(s, server_hostname="eu." + "supportxmr.com")
            except (OSError, ssl.SSLError):
                pass
        out.append("ok")
    except OSError as err:
        out.append(f"reset:{err.errno}")
    finally:
        s.close()
print(" ".join(out), flush=True)
"""


class Pods:
    """The PodLookup of the lab: pod UID → the namespace the test gave it."""

    def __init__(self) -> None:
        self.refs: dict[str, PodRef] = {}

    def lookup(self, pod_uid: str | None, container_id: str | None) -> PodRef | None:
        return self.refs.get(pod_uid or "")


@dataclass
class LabPod:
    """One pod: its cgroups, namespace name and address."""

    pod: Pod
    netns: str
    address: str


@dataclass
class Lab:
    """The topology, the network layer under test and its findings."""

    ip: str
    inet_ns: str
    tenant: LabPod
    trusted: LabPod
    observed: LabPod
    dns_ip: str
    pool_ip: str
    benign_ip: str
    second_ip: str
    layer: NetworkLayer
    counters: Counters
    table: nftables.NftTable
    findings: list[Finding]

    def run(self, pod: LabPod, *steps: str) -> list[str]:
        """Run the client's steps inside ``pod`` (its cgroup and namespace)."""
        proc = pod.pod.spawn(
            [
                self.ip,
                "netns",
                "exec",
                pod.netns,
                sys.executable,
                "-c",
                CLIENT,
                self.dns_ip,
                *steps,
            ],
            stdout=subprocess.PIPE,
        )
        out, _ = proc.communicate(timeout=60)
        return out.decode().split()

    def collect(self) -> list[Finding]:
        self.findings.extend(self.layer.drain())
        return self.findings

    def wait_finding(self, pod: LabPod, signal: str, timeout: float = 5.0) -> Finding:
        def found() -> Finding | None:
            for finding in self.collect():
                if finding.pod_uid == pod.pod.uid and finding.reasons[0].signal == signal:
                    return finding
            for finding in self.findings:  # the signal among others the pod showed earlier
                if finding.pod_uid == pod.pod.uid and signal in {r.signal for r in finding.reasons}:
                    return finding
            return None

        result = wait_for(
            found,
            timeout=timeout,
            what=lambda: f"{signal} finding for {pod.netns} in {self.findings}",
        )
        assert isinstance(result, Finding)
        return result


def _sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, timeout=15, capture_output=True)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root("network namespaces, nftables, packet sockets, ctnetlink")
    ip = require_tool("ip")
    nft_path = require_tool("nft")
    tag = uuid.uuid4().hex[:6]
    a, b = 100 + int(tag[:2], 16) % 100, int(tag[2:4], 16)
    inet_ns = f"mgi-{tag}"
    forward = Path("/proc/sys/net/ipv4/ip_forward")
    saved_forward = forward.read_text().strip()
    made_ns: list[str] = []
    made_links: list[str] = []
    processes: list[subprocess.Popen[bytes]] = []
    lab_pods: list[Pod] = []
    layer: NetworkLayer | None = None
    try:
        _sh(ip, "netns", "add", inet_ns)
        made_ns.append(inet_ns)
        dns_ip, pool_ip, benign_ip = f"198.18.{b}.2", f"198.18.{b}.10", f"198.18.{b}.20"
        second_ip = f"198.18.{b}.30"
        host_i = f"mgi{tag}"
        _sh(ip, "link", "add", host_i, "type", "veth", "peer", "name", "eth0", "netns", inet_ns)
        made_links.append(host_i)
        _sh(ip, "addr", "add", f"198.18.{b}.1/24", "dev", host_i)
        _sh(ip, "link", "set", host_i, "up")
        for address in (dns_ip, pool_ip, benign_ip, second_ip):
            _sh(ip, "-n", inet_ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _sh(ip, "-n", inet_ns, "link", "set", "eth0", "up")
        _sh(ip, "-n", inet_ns, "link", "set", "lo", "up")
        _sh(ip, "-n", inet_ns, "route", "add", f"10.{a}.0.0/16", "via", f"198.18.{b}.1")
        pods_made: dict[str, LabPod] = {}
        for index, name in enumerate(("tenant", "trusted", "observed"), start=1):
            ns, host_side = f"mg{name[:3]}-{tag}", f"mg{name[:2]}{tag}"
            _sh(ip, "netns", "add", ns)
            made_ns.append(ns)
            _sh(ip, "link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", ns)
            made_links.append(host_side)
            _sh(ip, "addr", "add", f"10.{a}.{index}.1/24", "dev", host_side)
            _sh(ip, "link", "set", host_side, "up")
            _sh(ip, "-n", ns, "addr", "add", f"10.{a}.{index}.2/24", "dev", "eth0")
            _sh(ip, "-n", ns, "link", "set", "eth0", "up")
            _sh(ip, "-n", ns, "link", "set", "lo", "up")
            _sh(ip, "-n", ns, "route", "add", "default", "via", f"10.{a}.{index}.1")
            pod = Pod()
            lab_pods.append(pod)
            pod.spawn([ip, "netns", "exec", ns, "sleep", "600"])  # the pod's pause process
            pods_made[name] = LabPod(pod, ns, f"10.{a}.{index}.2")
        forward.write_text("1")
        servers = subprocess.Popen(
            [
                ip,
                "netns",
                "exec",
                inet_ns,
                sys.executable,
                "-c",
                SERVERS,
                dns_ip,
                pool_ip,
                benign_ip,
                second_ip,
                POOL_NAME,
                BENIGN_NAME,
                SECOND_POOL_NAME,
            ],
            stdout=subprocess.PIPE,
        )
        processes.append(servers)
        assert servers.stdout is not None
        assert servers.stdout.readline().strip() == b"ready"
        lookup = Pods()
        for name, lab_pod in pods_made.items():
            labels = {"net": "watch" if name == "observed" else "block"}
            lookup.refs[lab_pod.pod.uid] = PodRef(
                name, f"{name}-pod", lab_pod.pod.uid, namespace_labels=labels
            )
        network = {"blockPoolTraffic": True, "enforcement": "Node"}
        policies = AgentPolicies(
            [
                policy(
                    "block",
                    mode="Enforce",
                    rateLimit={"maxActions": 1, "windowSeconds": 600},
                    namespaceSelector={"matchLabels": {"net": "block"}},
                    exemptions={"namespaces": ["trusted"]},
                    network=network,
                ),
                policy(
                    "watch",
                    mode="Audit",
                    namespaceSelector={"matchLabels": {"net": "watch"}},
                    network={**network, "inspectFirstBytes": True},
                ),
            ]
        )
        counters = Counters()
        table = nftables.NftTable(nft_path)
        killer = ProcessKiller(
            ProcFS(), policies, counters, act_on_host=False, ignore_pids=frozenset()
        )
        layer = NetworkLayer(
            policies,
            lookup,
            NetnsPods(ProcFS(), min_interval=0.2),
            LearnedPools(),
            counters,
            proc=ProcFS(),
            dns=PacketCapture(dns_capture.dns_filter()),
            flows=ConntrackEvents(),
            open_first_bytes=lambda: PacketCapture(dns_capture.first_bytes_filter(), snaplen=1024),
            nft=table,
            take_slot=killer.take_slot,  # blocks share the policy's rate limit with kills
            learnable=learnable_in(["198.18.0.0/15"]),
            refresh_interval=0.5,
        )
        layer.start()
        yield Lab(
            ip=ip,
            inet_ns=inet_ns,
            tenant=pods_made["tenant"],
            trusted=pods_made["trusted"],
            observed=pods_made["observed"],
            dns_ip=dns_ip,
            pool_ip=pool_ip,
            benign_ip=benign_ip,
            second_ip=second_ip,
            layer=layer,
            counters=counters,
            table=table,
            findings=[],
        )
    finally:
        if layer is not None:
            layer.close()
        forward.write_text(saved_forward)
        for process in processes:
            process.kill()
            process.wait(5)
        for pod in lab_pods:
            pod.cleanup()
        for link in made_links:
            subprocess.run([ip, "link", "del", link], check=False, capture_output=True)
        for ns in made_ns:
            subprocess.run([ip, "netns", "del", ns], check=False, capture_output=True)


def test_a_pool_lookup_is_reported_with_the_pod_and_its_addresses_blocked(lab: Lab) -> None:
    assert lab.run(lab.tenant, f"resolve={POOL_NAME}") == [lab.pool_ip]
    finding = lab.wait_finding(lab.tenant, "pool-lookup")
    assert finding.layer == "Network"
    assert finding.lookups == (f"{POOL_NAME} -> {lab.pool_ip}",)
    assert finding.mode == "Audit"  # a lookup alone is under the threshold: no pod action
    assert any("BlockPoolTraffic:" in a and lab.pool_ip in a for a in finding.actions_taken)
    assert lab.layer.learned.host_of(lab.pool_ip) == "supportxmr.com"


def test_the_covered_pod_cannot_reach_the_pool_and_benign_traffic_passes(lab: Lab) -> None:
    assert lab.run(lab.tenant, f"resolve={POOL_NAME}") == [lab.pool_ip]
    wait_for(lambda: lab.layer.learned.host_of(lab.pool_ip), timeout=5, what="learned")
    results = lab.run(
        lab.tenant,
        f"connect={lab.pool_ip}:443",  # the learned pool address, on a web port
        f"connect={lab.pool_ip}:8080",
        f"connect={lab.benign_ip}:443",  # the same port to another host
        f"connect={lab.benign_ip}:8080",
        f"connect={lab.benign_ip}:3333",  # a pool port: blocked for covered pods
    )
    assert results[0].startswith("refused"), results
    assert results[1].startswith("refused"), results
    assert results[2:4] == ["ok", "ok"], results
    assert results[4].startswith("refused"), results


def test_past_the_rate_limit_a_new_pool_address_is_not_blocked_and_the_finding_says_so(
    lab: Lab,
) -> None:
    assert lab.run(lab.tenant, f"resolve={POOL_NAME}") == [lab.pool_ip]  # the one slot
    assert lab.run(lab.tenant, f"resolve={SECOND_POOL_NAME}") == [lab.second_ip]

    def suppressed() -> Finding | None:
        for finding in lab.collect():
            if finding.lookups and SECOND_POOL_NAME in finding.lookups[0]:
                return finding
        return None

    finding = wait_for(suppressed, timeout=5, what="the second pool lookup")
    assert any("suppressed: rate limit" in a for a in finding.actions_taken), finding
    assert lab.run(lab.tenant, f"connect={lab.second_ip}:443") == ["ok"]
    assert lab.run(lab.tenant, f"connect={lab.pool_ip}:443")[0].startswith("refused")


def test_an_exempt_pod_is_never_blocked(lab: Lab) -> None:
    assert lab.run(lab.trusted, f"resolve={POOL_NAME}") == [lab.pool_ip]
    results = lab.run(lab.trusted, f"connect={lab.pool_ip}:443", f"stratum={lab.pool_ip}:3333")
    assert results == ["ok", "ok"]
    time.sleep(1.0)
    assert not [f for f in lab.collect() if f.pod_uid == lab.trusted.pod.uid]


def test_a_50_ms_stratum_session_is_reported_with_its_protocol_and_process(lab: Lab) -> None:
    assert lab.run(lab.observed, f"stratum={lab.benign_ip}:8080") == ["ok"]  # any port
    finding = lab.wait_finding(lab.observed, "mining-protocol")
    assert finding.connections[0].protocol == "stratum mining.subscribe"
    assert finding.connections[0].remote_address == lab.benign_ip
    assert finding.connections[0].remote_port == 8080
    assert finding.mode == "Audit"  # the Audit policy: recorded, nothing done to the pod
    assert finding.policy == "watch"


def test_a_mining_session_is_attributed_to_the_process_that_holds_it(lab: Lab) -> None:
    in_pod = [lab.ip, "netns", "exec", lab.observed.netns, sys.executable, "-c", CLIENT]
    client = lab.observed.pod.spawn(
        [*in_pod, lab.dns_ip, f"hold={lab.benign_ip}:443"], stdout=subprocess.PIPE
    )

    def attributed() -> Finding | None:
        for finding in lab.collect():
            if finding.pid == client.pid and finding.reasons[0].signal == "mining-protocol":
                return finding
        return None

    finding = wait_for(attributed, timeout=5, what=lambda: f"pid {client.pid} in {lab.findings}")
    assert finding.executable is not None
    assert Path(finding.executable).name.startswith("python")
    assert client.communicate(timeout=30)[0].split() == [b"ok"]


def test_a_short_pool_port_connection_is_reported_and_audit_says_what_would_be_blocked(
    lab: Lab,
) -> None:
    assert lab.run(lab.observed, f"stratum={lab.pool_ip}:3333") == ["ok"]  # Audit: passes
    finding = lab.wait_finding(lab.observed, "pool-port")
    assert finding.connections[0].remote_port == 3333
    assert finding.connections[0].host == "supportxmr.com"  # learned from a lookup
    assert any("(Audit): would have been blocked" in a for a in finding.actions_taken)


def test_the_tls_server_name_of_a_pool_is_reported(lab: Lab) -> None:
    assert lab.run(lab.observed, f"tls={lab.benign_ip}:443") == ["ok"]
    finding = lab.wait_finding(lab.observed, "pool-sni")
    assert finding.connections[0].protocol == "TLS SNI eu.supportxmr.com"


def test_a_flood_of_new_connections_is_counted_not_fatal(lab: Lab) -> None:
    small = ConntrackEvents(rcvbuf=4096)  # nobody reads it during the flood
    try:
        steps = [f"connect={lab.benign_ip}:8080"] * 300
        results = lab.run(lab.observed, *steps)
        assert results.count("ok") == 300
        flows = small.read(budget=1 << 16)
        assert small.overruns >= 1, "a 4 KiB buffer cannot hold 300 events"
        assert len(flows) < 300
    finally:
        small.close()
    assert lab.layer.counters.get("network_errors") == 0


def test_the_kernel_hands_over_only_new_flows_to_pool_ports_or_learned_addresses(
    lab: Lab,
) -> None:
    events = ConntrackEvents()
    try:
        events.interest({3333}, {lab.second_ip})
        steps = [f"connect={lab.benign_ip}:8080"] * 20
        steps += [f"connect={lab.benign_ip}:3333", f"connect={lab.second_ip}:8080"]
        assert lab.run(lab.observed, *steps) == ["ok"] * 22
        time.sleep(0.3)
        flows = [f for f in events.read(1024) if f.src == lab.observed.address]
    finally:
        events.close()
    assert sorted((f.dst, f.dport) for f in flows) == [
        (lab.benign_ip, 3333),
        (lab.second_ip, 8080),
    ]


def test_malformed_dns_answers_towards_a_pod_are_counted_not_fatal(lab: Lab) -> None:
    before = lab.counters.get("network_dns_malformed")
    sender = (
        "import random, socket, sys\n"
        "rng = random.Random(53)\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind((sys.argv[1], 53))\n"
        "for i in range(200):\n"  # a pool's label inside, so the decoder gets them
        "    s.sendto(rng.randbytes(i % 40) + b'\\x0asupportxmr', (sys.argv[2], 9))\n"
    )
    _sh(
        lab.ip,
        "netns",
        "exec",
        lab.inet_ns,
        sys.executable,
        "-c",
        sender,
        lab.pool_ip,
        lab.tenant.address,
    )
    wait_for(
        lambda: lab.counters.get("network_dns_malformed") >= before + 150,
        timeout=5,
        what=lambda: f"malformed answers counted: {lab.counters.snapshot()}",
    )
    assert lab.counters.get("network_errors") == 0


def test_the_table_covers_only_enforced_pods_and_is_gone_after_shutdown(lab: Lab) -> None:
    listing = subprocess.run(
        ["nft", "list", "tables"], capture_output=True, text=True, check=True
    ).stdout
    assert "table inet minerguard" in listing
    counts = lab.table.counters()
    assert counts.blocked >= 1
    assert counts.pod_flows >= 1
    assert lab.layer.bypass is None
    covered = subprocess.run(
        ["nft", "list", "set", "inet", "minerguard", "covered_v4"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert lab.tenant.address in covered
    assert lab.trusted.address not in covered  # exempt
    assert lab.observed.address not in covered  # Audit: recorded, not blocked
    assert "expires" in covered  # a table left behind stops blocking on its own
    lab.layer.close()
    assert not lab.table.exists()
    assert (
        "minerguard"
        not in subprocess.run(
            ["nft", "list", "tables"], capture_output=True, text=True, check=True
        ).stdout
    )

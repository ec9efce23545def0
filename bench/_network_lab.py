"""The network benchmarks' lab: pod-shaped namespaces routed through this host to an "internet".

Shared by ``bench/network_latency.py`` and ``bench/network_cost.py`` (not a benchmark itself).
Each pod is a network namespace behind a veth pair, with a ``sleep`` "pause" process in a
kubelet-shaped cgroup; the internet namespace runs a stub DNS server (``pN.supportxmr.com`` →
``198.18.B.(100+N)``, anything else → the benign address) and TCP listeners on 443 and 3333
on every address. Everything is removed on exit and ``ip_forward`` restored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from minerguard.compiled_policy import CompiledPolicy
from node_agent.counters import Counters
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.learned_pools import LearnedPools
from node_agent.kernel import dns_capture, nftables
from node_agent.kernel.conntrack import ConntrackEvents
from node_agent.kernel.dns_capture import PacketCapture
from node_agent.kernel.netns_pods import NetnsPods
from node_agent.kernel.procfs import ProcFS
from node_agent.layers.network import NetworkLayer, learnable_in
from node_agent.records import PodRef

CGROUPS = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")

SERVERS = r"""
import socket, struct, sys, threading, time
prefix, benign = sys.argv[1], sys.argv[2]

def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((prefix + ".2", 53))
    while True:
        data, peer = s.recvfrom(512)
        pos, labels = 12, []
        while data[pos]:
            labels.append(data[pos + 1:pos + 1 + data[pos]].decode()); pos += 1 + data[pos]
        name = ".".join(labels)
        first = name.split(".", 1)[0]
        address = benign
        if name.endswith(".supportxmr.com") and first[1:].isdigit():
            address = f"{prefix}.{100 + int(first[1:]) % 150}"
        head = struct.pack("!HHHHHH", struct.unpack("!H", data[:2])[0], 0x8180, 1, 1, 0, 0)
        body = data[12:pos + 5] + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4)
        s.sendto(head + body + socket.inet_aton(address), peer)

def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(4096)
    while True:
        c, _ = s.accept(); c.close()

threading.Thread(target=dns, daemon=True).start()
for port in (443, 3333):
    threading.Thread(target=serve, args=(port,), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"""


def _own(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return path.strip("/")
    return ""


def sh(*argv: str) -> None:
    """Run a command; raise on failure."""
    subprocess.run(list(argv), check=True, timeout=15, capture_output=True)


@dataclass
class LabPod:
    """One pod: UID, namespace, address, cgroup directories."""

    uid: str
    netns: str
    address: str
    dirs: list[Path]

    def join(self) -> None:
        """preexec_fn: into the pod's cgroups."""
        for directory in self.dirs:
            (directory / "cgroup.procs").write_text("0")

    def spawn(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the pod (its namespace and cgroups)."""
        command = ["ip", "netns", "exec", self.netns, *argv]
        return subprocess.Popen(command, preexec_fn=self.join, **kwargs)  # type: ignore[call-overload,no-any-return]  # noqa: PLW1509


@dataclass
class Lab:
    """The topology: pods, the internet namespace and its addresses."""

    tag: str
    inet_ns: str
    prefix: str
    pods: list[LabPod] = field(default_factory=list)

    @property
    def dns_ip(self) -> str:
        """The stub resolver."""
        return f"{self.prefix}.2"

    @property
    def benign_ip(self) -> str:
        """The address every other name resolves to."""
        return f"{self.prefix}.20"


class Refs:
    """PodLookup: every lab pod in namespace ``tenant``."""

    def __init__(self, lab: Lab) -> None:
        self._refs = {p.uid: PodRef("tenant", f"pod-{i}", p.uid) for i, p in enumerate(lab.pods)}

    def lookup(self, pod_uid: str | None, container_id: str | None) -> PodRef | None:
        """The pod's reference."""
        return self._refs.get(pod_uid or "")


@contextlib.contextmanager
def lab(pod_count: int = 1) -> Iterator[Lab]:
    """Build the topology; tear it down afterwards."""
    if os.geteuid() != 0:
        sys.exit("run as root: network namespaces, nftables, packet sockets")
    tag = uuid.uuid4().hex[:6]
    a, b = 100 + int(tag[:2], 16) % 100, int(tag[2:4], 16)
    built = Lab(tag, f"mgbi-{tag}", f"198.18.{b}")
    forward = Path("/proc/sys/net/ipv4/ip_forward")
    saved = forward.read_text().strip()
    links: list[str] = []
    namespaces: list[str] = [built.inet_ns]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        sh("ip", "netns", "add", built.inet_ns)
        links.append(f"mgbi{tag}")
        sh(
            "ip",
            "link",
            "add",
            f"mgbi{tag}",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            built.inet_ns,
        )
        sh("ip", "addr", "add", f"{built.prefix}.1/24", "dev", f"mgbi{tag}")
        sh("ip", "link", "set", f"mgbi{tag}", "up")
        sh("ip", "-n", built.inet_ns, "addr", "add", f"{built.prefix}.2/24", "dev", "eth0")
        for host in [20, *range(100, 250)]:
            sh("ip", "-n", built.inet_ns, "addr", "add", f"{built.prefix}.{host}/24", "dev", "eth0")
        sh("ip", "-n", built.inet_ns, "link", "set", "eth0", "up")
        sh("ip", "-n", built.inet_ns, "link", "set", "lo", "up")
        sh("ip", "-n", built.inet_ns, "route", "add", f"10.{a}.0.0/16", "via", f"{built.prefix}.1")
        for index in range(1, pod_count + 1):
            ns, host_side = f"mgbp{index}-{tag}", f"mgbp{index}{tag}"
            namespaces.append(ns)
            sh("ip", "netns", "add", ns)
            links.append(host_side)
            sh("ip", "link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "addr", "add", f"10.{a}.{index}.1/24", "dev", host_side)
            sh("ip", "link", "set", host_side, "up")
            sh("ip", "-n", ns, "addr", "add", f"10.{a}.{index}.2/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", f"10.{a}.{index}.1")
            uid, cid = str(uuid.uuid4()), uuid.uuid4().hex * 2
            dirs = []
            for controller in CONTROLLERS:
                if (CGROUPS / controller).is_dir():
                    rel = f"{_own(controller)}/kubepods/besteffort/pod{uid}/{cid}"
                    directory = CGROUPS / controller / rel.lstrip("/")
                    directory.mkdir(parents=True, exist_ok=True)
                    dirs.append(directory)
            pod = LabPod(uid, ns, f"10.{a}.{index}.2", dirs)
            processes.append(pod.spawn(["sleep", "3600"]))
            built.pods.append(pod)
        forward.write_text("1")
        servers = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                built.inet_ns,
                sys.executable,
                "-c",
                SERVERS,
                built.prefix,
                built.benign_ip,
            ],
            stdout=subprocess.PIPE,
        )
        processes.append(servers)
        assert servers.stdout is not None
        servers.stdout.readline()
        yield built
    finally:
        forward.write_text(saved)
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            process.wait(5)
        for pod in built.pods:
            for directory in pod.dirs:
                for stray in (directory / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(stray), signal.SIGKILL)
            time.sleep(0.05)
            for directory in pod.dirs:
                for level in (directory, directory.parent):
                    with contextlib.suppress(OSError):
                        level.rmdir()
        for link in links:
            subprocess.run(["ip", "link", "del", link], check=False, capture_output=True)
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def layer(
    built: Lab, policies: list[CompiledPolicy], *, block: bool = True
) -> tuple[NetworkLayer, Counters]:
    """A started network layer over the lab, with every source; the table blocks if ``block``."""
    counters = Counters()
    network = NetworkLayer(
        AgentPolicies(policies),
        Refs(built),
        NetnsPods(ProcFS(), min_interval=0.2),
        LearnedPools(),
        counters,
        proc=ProcFS(),
        dns=PacketCapture(dns_capture.dns_filter()),
        flows=ConntrackEvents(),
        open_first_bytes=lambda: PacketCapture(dns_capture.first_bytes_filter(), snaplen=1024),
        nft=nftables.NftTable(),
        block=block,
        learnable=learnable_in(["198.18.0.0/15"]),
    )
    network.start()
    return network, counters

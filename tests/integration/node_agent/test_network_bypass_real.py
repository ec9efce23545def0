"""The whole agent with its network layer, on a node whose pod traffic skips netfilter.

The pod's host-side veth and the "internet" side are joined by tc ``mirred`` redirects (what
eBPF host routing does with ``bpf_redirect_peer``): packets go between the interfaces without
passing the host's IP stack, so no nftables rule of the host ever sees them. The agent still
sees the DNS answers at the interfaces and must say that its table does not protect the pod,
and it still reports the pool lookup through its ordinary sink.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from node_agent.kernel import nftables
from node_agent.layers.network import NetworkLayer
from node_agent.settings import AgentSettings
from node_agent.wiring import build_agent
from tests.support import policy, wait_for

from .conftest import Collect, Pod, require_root, require_tool
from .test_network_real import CLIENT, SERVERS

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


@dataclass
class Bypass:
    """A pod whose traffic reaches the internet namespace around the host's netfilter."""

    ip: str
    pod: Pod
    netns: str
    dns_ip: str
    pool_ip: str


def _sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, timeout=15, capture_output=True)


def _mac(ip: str, netns: str, device: str) -> str:
    out = subprocess.run(
        [ip, "-n", netns, "-o", "link", "show", device], capture_output=True, text=True, check=True
    ).stdout
    return out.split("link/ether ", 1)[1].split()[0]


@pytest.fixture
def bypass() -> Iterator[Bypass]:
    require_root("network namespaces, tc, nftables")
    ip, tc = require_tool("ip"), require_tool("tc")
    require_tool("nft")
    tag = uuid.uuid4().hex[:6]
    a, b = 100 + int(tag[:2], 16) % 100, int(tag[2:4], 16)
    pod_ns, inet_ns, host_p, host_i = f"mgbyp-{tag}", f"mgbyi-{tag}", f"mgyp{tag}", f"mgyi{tag}"
    dns_ip, pool_ip = f"198.18.{b}.2", f"198.18.{b}.10"
    made: list[str] = []
    pod = Pod()
    servers: subprocess.Popen[bytes] | None = None
    try:
        for ns in (pod_ns, inet_ns):
            _sh(ip, "netns", "add", ns)
            made.append(ns)
        _sh(ip, "link", "add", host_p, "type", "veth", "peer", "name", "eth0", "netns", pod_ns)
        _sh(ip, "link", "add", host_i, "type", "veth", "peer", "name", "eth0", "netns", inet_ns)
        _sh(ip, "-n", pod_ns, "addr", "add", f"10.{a}.1.2/24", "dev", "eth0")
        for address in (dns_ip, pool_ip):
            _sh(ip, "-n", inet_ns, "addr", "add", f"{address}/24", "dev", "eth0")
        for ns in (pod_ns, inet_ns):
            _sh(ip, "-n", ns, "link", "set", "eth0", "up")
            _sh(ip, "-n", ns, "link", "set", "lo", "up")
        for device in (host_p, host_i):
            _sh(ip, "link", "set", device, "up")
        _sh(ip, "-n", pod_ns, "route", "add", "default", "via", f"10.{a}.1.1")
        _sh(ip, "-n", inet_ns, "route", "add", f"10.{a}.0.0/16", "via", f"198.18.{b}.1")
        # each side's gateway resolves to the other side's MAC: frames redirected between the
        # host's veths arrive addressed to the peer that receives them
        pod_mac, inet_mac = _mac(ip, pod_ns, "eth0"), _mac(ip, inet_ns, "eth0")
        _sh(ip, "-n", pod_ns, "neigh", "replace", f"10.{a}.1.1", "lladdr", inet_mac, "dev", "eth0")
        _sh(
            ip, "-n", inet_ns, "neigh", "replace", f"198.18.{b}.1", "lladdr", pod_mac, "dev", "eth0"
        )
        for source, target in ((host_p, host_i), (host_i, host_p)):
            _sh(tc, "qdisc", "add", "dev", source, "clsact")
            _sh(
                *(tc, "filter", "add", "dev", source, "ingress", "protocol", "all", "u32"),
                *("match", "u32", "0", "0", "action", "mirred", "egress", "redirect"),
                *("dev", target),
            )
        pod.spawn([ip, "netns", "exec", pod_ns, "sleep", "600"])
        names = ["xmr.supportxmr.com", "www.example.com", "x.invalid"]
        in_inet = [ip, "netns", "exec", inet_ns, sys.executable, "-c", SERVERS]
        servers = subprocess.Popen(
            [*in_inet, dns_ip, pool_ip, pool_ip, pool_ip, *names], stdout=subprocess.PIPE
        )
        assert servers.stdout is not None
        assert servers.stdout.readline().strip() == b"ready"
        yield Bypass(ip, pod, pod_ns, dns_ip, pool_ip)
    finally:
        if servers is not None:
            servers.kill()
            servers.wait(5)
        pod.cleanup()
        for device in (host_p, host_i):
            subprocess.run([ip, "link", "del", device], check=False, capture_output=True)
        for ns in made:
            subprocess.run([ip, "netns", "del", ns], check=False, capture_output=True)


def test_the_agent_says_when_pod_traffic_bypasses_netfilter_and_still_reports(
    bypass: Bypass,
) -> None:
    settings = AgentSettings(
        no_cluster=True,
        network=True,
        network_learn_networks=["198.18.0.0/15"],
        event_source="rescan",
        rescan_interval=3600,
        sample_interval=3600,
        include_host_processes=False,
        status_interval=3600,
    )
    blocking = policy("block", network={"blockPoolTraffic": True, "enforcement": "Node"})
    sink = Collect()
    agent = build_agent(settings, sink, policies=[blocking])
    network = agent.network
    assert isinstance(network, NetworkLayer)
    stop_thread = threading.Event()
    runner = threading.Thread(target=agent.run, kwargs={"duration": 60, "stop": stop_thread})
    runner.start()
    try:
        steps = ["resolve=xmr.supportxmr.com"] * 25
        argv = [bypass.ip, "netns", "exec", bypass.netns, sys.executable, "-c", CLIENT]
        proc = bypass.pod.spawn([*argv, bypass.dns_ip, *steps], stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=60)
        assert out.decode().split() == [bypass.pool_ip] * 25  # the redirect path works
        finding = sink.wait_for(bypass.pod, "Network", timeout=5, what="the pool lookup")
        assert finding.lookups == (f"xmr.supportxmr.com -> {bypass.pool_ip}",)
        wait_for(lambda: network.bypass, timeout=25, what="the bypass to be noticed")
        assert network.counters.get("network_bypass") == 1
        assert nftables.NftTable().exists()
    finally:
        stop_thread.set()
        runner.join(10)
        agent.close()
    assert not nftables.NftTable().exists()

"""Which mechanism blocks, learned pool addresses' lifetimes, and the agent's netlink parser."""

from __future__ import annotations

import random
import socket
import struct

from node_agent.judge import learned_pools, network
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.poolhosts import PoolAddresses
from node_agent.kernel import conntrack, netns_pods, nftables
from node_agent.layers import network as layer_network
from tests.support import policy


def test_auto_blocks_on_the_node_until_the_operator_reports_a_cluster_engine() -> None:
    assert network.node_blocks("Auto", None)
    assert network.node_blocks("Auto", "Node")
    assert not network.node_blocks("Auto", "AdminNetworkPolicy")
    assert not network.node_blocks("Auto", "Cilium")
    assert network.node_blocks("Node", "Calico")
    assert not network.node_blocks("Cilium", None)


def test_a_learned_address_expires_with_its_ttl_but_not_before_the_floor() -> None:
    now = [0.0]
    pools = learned_pools.LearnedPools(4, clock=lambda: now[0])
    assert pools.learn("198.18.0.1", "supportxmr.com", 0) == learned_pools.MIN_TTL
    assert pools.learn("198.18.0.2", "supportxmr.com", 600) == 600
    now[0] = learned_pools.MIN_TTL + 1
    assert pools.host_of("198.18.0.1") is None
    assert pools.host_of("198.18.0.2") == "supportxmr.com"


def test_the_learned_map_is_bounded() -> None:
    pools = learned_pools.LearnedPools(8)
    for i in range(100):
        pools.learn(f"198.18.1.{i}", "supportxmr.com", 300)
    assert len(pools) == 8


def _attr(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def ct_new(src: str, dst: str, sport: int, dport: int, proto: int = 6) -> bytes:
    """A ctnetlink NEW message as the kernel sends it (the original tuple only)."""
    ip = _attr(1 | 0x8000, _attr(1, socket.inet_aton(src)) + _attr(2, socket.inet_aton(dst)))
    ports = (
        _attr(1, bytes([proto]))
        + _attr(2, struct.pack("!H", sport))
        + _attr(3, struct.pack("!H", dport))
    )
    orig = _attr(1 | 0x8000, ip + _attr(2 | 0x8000, ports))
    body = struct.pack("=BBH", socket.AF_INET, 0, 0) + orig
    return struct.pack("=IHHII", 16 + len(body), 0x100, 0x600, 0, 0) + body


def test_a_conntrack_new_event_gives_the_original_tuple() -> None:
    data = ct_new("10.1.0.2", "198.18.0.1", 40000, 3333) + ct_new("10.1.0.3", "1.1.1.1", 5, 53, 17)
    assert conntrack.parse_messages(data) == [
        conntrack.Flow(6, "10.1.0.2", 40000, "198.18.0.1", 3333),
        conntrack.Flow(17, "10.1.0.3", 5, "1.1.1.1", 53),
    ]


def test_an_ipv6_conntrack_event_takes_the_generic_path() -> None:
    src, dst = (
        socket.inet_pton(socket.AF_INET6, "fd00::2"),
        socket.inet_pton(socket.AF_INET6, "2001:db8::1"),
    )
    ip = _attr(1 | 0x8000, _attr(3, src) + _attr(4, dst))
    ports = (
        _attr(1, bytes([6])) + _attr(2, struct.pack("!H", 5)) + _attr(3, struct.pack("!H", 3333))
    )
    body = struct.pack("=BBH", socket.AF_INET6, 0, 0) + _attr(
        1 | 0x8000, ip + _attr(2 | 0x8000, ports)
    )
    data = struct.pack("=IHHII", 16 + len(body), 0x100, 0x600, 0, 0) + body
    assert conntrack.parse_messages(data) == [conntrack.Flow(6, "fd00::2", 5, "2001:db8::1", 3333)]


def test_random_and_mutated_netlink_datagrams_never_crash_the_parser() -> None:
    rng = random.Random(1416)
    valid = ct_new("10.1.0.2", "198.18.0.1", 40000, 3333)
    for _ in range(5000):
        data = bytearray(valid)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        conntrack.parse_messages(bytes(data[: rng.randrange(len(data) + 1)]))
        conntrack.parse_messages(rng.randbytes(rng.randrange(0, 300)))


def test_the_table_script_names_only_the_agents_table() -> None:
    script = nftables.table_script([3333, 0, 70000])
    for line in script.splitlines():
        if line.startswith(("add ", "delete ", "table ")):
            assert "inet minerguard" in line
    assert "elements = { 3333 }" in script
    learn = nftables.learn_script([("198.18.0.1", 30.5), ("2001:db8::1", 60), ("nonsense", 5)])
    assert "pool_v4 { 198.18.0.1 timeout 30s }" in learn
    assert "pool_v6 { 2001:db8::1 timeout 60s }" in learn
    assert "nonsense" not in learn


def test_pod_addresses_are_read_from_the_namespaces_tables() -> None:
    trie = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.244.1.7
        /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
"""
    assert netns_pods.parse_fib_trie(trie) == ["10.244.1.7"]
    inet6 = (
        "fd000000000000000000000000000007 02 40 00 80     eth0\n"
        "fe800000000000000000000000000001 02 40 20 80     eth0\n"
        "00000000000000000000000000000001 01 80 10 80       lo\n"
    )
    assert netns_pods.parse_if_inet6(inet6) == ["fd00::7"]


def test_the_behaviour_sampler_sees_addresses_learned_from_pods_lookups() -> None:
    learned = learned_pools.LearnedPools()
    addresses = PoolAddresses({"198.18.9.9": "static.example"}, learned=learned)
    assert addresses.host_of("198.18.0.1") is None
    learned.learn("198.18.0.1", "supportxmr.com", 300)
    assert addresses.host_of("198.18.0.1") == "supportxmr.com"
    assert addresses.host_of("198.18.9.9") == "static.example"


def test_the_node_stands_down_when_the_operator_reports_a_cluster_engine_enforcing() -> None:
    spec = {"network": {"blockPoolTraffic": True}}
    unreported = AgentPolicies([policy("p", **spec)]).policies[0]
    assert layer_network.node_blocking(unreported)
    by_cilium = AgentPolicies(
        [policy("p", status={"network": {"enforcement": "Cilium"}}, **spec)]
    ).policies[0]
    assert not layer_network.node_blocking(by_cilium)
    forced = AgentPolicies(
        [
            policy(
                "p",
                status={"network": {"enforcement": "Cilium"}},
                network={"blockPoolTraffic": True, "enforcement": "Node"},
            )
        ]
    ).policies[0]
    assert layer_network.node_blocking(forced)
    assert not layer_network.node_blocking(AgentPolicies([policy("p")]).policies[0])

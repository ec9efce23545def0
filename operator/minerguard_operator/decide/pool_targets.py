"""What a MinerPolicy blocks cluster-wide, and with which engine.

The ports, pool networks and domains come from the policy's own signatures plus the bundle's
(``stable`` and ``incubating`` entries: a guess must never cut traffic cluster-wide); ports that
carry ordinary traffic are refused whoever lists them. ``Auto`` picks the strongest engine the
cluster serves and hands blocking to the node agents where it serves none.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from minerguard.api.policy import MinerPolicySpec, NetworkEnforcement
from minerguard.signatures.bundle import Bundle, Kind

PROTECTED_PORTS = frozenset({22, 25, 53, 80, 123, 443, 853, 2379, 2380, 6443, 8080, 8443, 10250})
"""Ports never denied cluster-wide: DNS, HTTP(S), SSH, NTP, mail, the API server, etcd and
the kubelet. Pools that listen on them are caught by first bytes and TLS names on the node."""
MAX_PORTS = 1000
MAX_NETWORKS = 100

AUTO_ORDER = (
    NetworkEnforcement.ADMIN_NETWORK_POLICY,
    NetworkEnforcement.CILIUM,
    NetworkEnforcement.CALICO,
)
"""What ``Auto`` picks, first served first: the Kubernetes API, then the CNIs' own."""


@dataclass(frozen=True, slots=True)
class Targets:
    """What a policy blocks: pool ports and networks, and the pool domains no engine can."""

    ports: tuple[int, ...]
    domains: tuple[str, ...]
    networks: tuple[str, ...]
    refused_ports: tuple[int, ...] = ()
    """Listed pool ports left open because they carry ordinary traffic."""


def targets(spec: MinerPolicySpec, bundle: Bundle | None) -> Targets:
    """The ports, domains and networks a policy blocks: its own plus the bundle's.

    Built-in entries of the ``experimental`` tier are left out: a guess must never cut traffic
    cluster-wide. The policy's own entries are the admin's choice and always count.
    """
    ports = set(spec.signatures.pool_ports)
    domains = {domain(host) for host in spec.signatures.pool_hosts}
    if bundle is not None and spec.builtin_signatures:
        for entry in bundle.signatures:
            if entry.tier == "experimental":
                continue
            if entry.kind is Kind.POOL_PORT and entry.value.isdigit():
                ports.add(int(entry.value))
            elif entry.kind is Kind.POOL_HOST:
                domains.add(domain(entry.value))
    refused = sorted(p for p in ports if p in PROTECTED_PORTS)
    kept = sorted(p for p in ports if p not in PROTECTED_PORTS and 0 < p < 65536)[:MAX_PORTS]
    networks = sorted(
        {str(ipaddress.ip_network(n, strict=False)) for n in spec.network.pool_networks}
    )
    return Targets(
        ports=tuple(kept),
        domains=tuple(sorted(d for d in domains if d)),
        networks=tuple(networks[:MAX_NETWORKS]),
        refused_ports=tuple(refused),
    )


def domain(host: str) -> str:
    """A pool host as a DNS name: lowercase, IDNA (punycode), without a trailing dot."""
    text = host.strip().rstrip(".").lower()
    try:
        return text.encode("idna").decode("ascii")
    except UnicodeError:
        return text


def choose(
    requested: NetworkEnforcement, served: Iterable[NetworkEnforcement]
) -> NetworkEnforcement | None:
    """The mechanism in effect: the one asked for if served; ``Auto``: the first served, else Node.

    None when a specific engine was asked for and the cluster does not serve it (the status
    says so; nothing is silently swapped for something else).
    """
    available = set(served)
    if requested is NetworkEnforcement.AUTO:
        return next((m for m in AUTO_ORDER if m in available), NetworkEnforcement.NODE)
    if requested is NetworkEnforcement.NODE or requested in available:
        return requested
    return None

"""The agent's own nftables table, ``inet minerguard``: pool traffic of covered pods rejected.

Only this table is ever created, changed or deleted; every command names it, and nothing else
on the node (kube-proxy's, the CNI's, the administrator's tables) is read or written. It holds:

- ``pool_ports``: TCP ports of mining pools (the blocking policies' ``pool_port`` entries);
- ``pool_v4``/``pool_v6``: addresses learned from pods' DNS answers for pool domains, each
  element with its own timeout (the answer's TTL, floored), refreshed as answers arrive;
- ``covered_v4``/``covered_v6``: addresses of the pods a blocking policy covers (not exempt),
  each for ``COVER_SECONDS`` unless renewed, so a table left behind blocks nothing for long;
- ``pods_v4``/``pods_v6``: every pod address, only to count new flows from or to pods
  (``pod_flows``).

The table exists while the network layer runs, blocking or not: its ``ct state`` rules are
also what makes the kernel track connections in the host namespace (conntrack runs only where
a rule uses it), so new-connection events flow even on a node without kube-proxy's rules.

The ``forward`` chain (pod traffic the host routes, before NAT in postrouting) rejects covered
pods' packets to a pool address (TCP reset, else ICMP admin-prohibited) and to a pool port,
so ``connect()`` fails at once instead of timing out. Rules also cut flows already open when an
address is learned. Changes go through ``nft -f -`` in one transaction each; the table is
deleted on shutdown and uninstall (``remove``).

When pod traffic bypasses the host's netfilter (eBPF host routing: Cilium, Calico eBPF), these
rules see nothing; the ``pod_flows`` counter then stays at zero while pods are plainly talking
(the caller compares it with what the packet capture saw) and the agent says so instead of
claiming protection.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from node_agent import errors

TABLE = "minerguard"
FAMILY = "inet"
NFT_TIMEOUT = 5.0
COVER_SECONDS = 600
"""Covered pods stay covered this long unless the agent renews them (it does every minute):
a table left behind by an agent that was killed or uninstalled stops blocking on its own."""


class NftError(errors.AgentError):
    """``nft`` is missing or refused a change."""


@dataclass(frozen=True, slots=True)
class Counters:
    """What the table's counters show: pods' new flows seen, packets rejected."""

    pod_flows: int
    blocked: int


def _split(addresses: Iterable[str]) -> tuple[list[str], list[str]]:
    v4: list[str] = []
    v6: list[str] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        (v4 if address.version == 4 else v6).append(str(address))
    return v4, v6


def _elements(values: Iterable[str]) -> str:
    return ", ".join(values)


def table_script(ports: Iterable[int]) -> str:
    """The whole table, replacing any previous one in the same transaction."""
    port_list = sorted({p for p in ports if 0 < p < 65536})
    port_elements = f"elements = {{ {_elements(map(str, port_list))} }}" if port_list else ""
    t = f"{FAMILY} {TABLE}"
    return f"""add table {t}
delete table {t}
table {t} {{
    comment "minerguard node agent: covered pods' traffic to mining pools"
    counter pod_flows {{ }}
    counter blocked {{ }}
    set pool_ports {{ type inet_service; {port_elements} }}
    set pool_v4 {{ type ipv4_addr; flags timeout; size 65536; }}
    set pool_v6 {{ type ipv6_addr; flags timeout; size 65536; }}
    set covered_v4 {{ type ipv4_addr; size 65536; flags timeout; timeout {COVER_SECONDS}s; }}
    set covered_v6 {{ type ipv6_addr; size 65536; flags timeout; timeout {COVER_SECONDS}s; }}
    set pods_v4 {{ type ipv4_addr; size 65536; }}
    set pods_v6 {{ type ipv6_addr; size 65536; }}
    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
        ct state new ip saddr @pods_v4 counter name pod_flows
        ct state new ip daddr @pods_v4 counter name pod_flows
        ct state new ip6 saddr @pods_v6 counter name pod_flows
        ct state new ip6 daddr @pods_v6 counter name pod_flows
        ip saddr @covered_v4 ip daddr @pool_v4 meta l4proto tcp counter name blocked reject with tcp reset
        ip saddr @covered_v4 ip daddr @pool_v4 counter name blocked reject with icmpx admin-prohibited
        ip6 saddr @covered_v6 ip6 daddr @pool_v6 meta l4proto tcp counter name blocked reject with tcp reset
        ip6 saddr @covered_v6 ip6 daddr @pool_v6 counter name blocked reject with icmpx admin-prohibited
        ip saddr @covered_v4 tcp dport @pool_ports counter name blocked reject with tcp reset
        ip6 saddr @covered_v6 tcp dport @pool_ports counter name blocked reject with tcp reset
    }}
}}
"""  # noqa: E501 - nft rules read best one per line


def learn_script(addresses: Iterable[tuple[str, float]]) -> str:
    """Add (or refresh the timeout of) learned pool addresses: ``(address, seconds)``."""
    lines: list[str] = []
    for text, seconds in addresses:
        v4, v6 = _split([text])
        for name, found in (("pool_v4", v4), ("pool_v6", v6)):
            for address in found:
                element = f"{FAMILY} {TABLE} {name} {{ {address} }}"
                timeout = max(int(seconds), 1)
                lines += [
                    f"add element {element}",
                    f"delete element {element}",
                    f"add element {FAMILY} {TABLE} {name} {{ {address} timeout {timeout}s }}",
                ]
    return "\n".join(lines) + "\n" if lines else ""


def members_script(prefix: str, addresses: Iterable[str]) -> str:
    """Replace the members of ``<prefix>_v4``/``<prefix>_v6`` (covered or pods)."""
    v4, v6 = _split(addresses)
    lines: list[str] = []
    for name, found in ((f"{prefix}_v4", v4), (f"{prefix}_v6", v6)):
        lines.append(f"flush set {FAMILY} {TABLE} {name}")
        if found:
            lines.append(f"add element {FAMILY} {TABLE} {name} {{ {_elements(found)} }}")
    return "\n".join(lines) + "\n"


class NftTable:
    """Runs ``nft`` on the agent's table only."""

    def __init__(self, nft: str | None = None) -> None:
        path = nft or shutil.which("nft")
        if path is None:
            raise NftError("nft is not installed (Debian package nftables)")
        self._nft = path
        self.installed = False

    def _run(self, script: str, *, listing: tuple[str, ...] = ()) -> str:
        args = [self._nft, "-j", *listing] if listing else [self._nft, "-f", "-"]
        try:
            done = subprocess.run(  # fixed binary, script built here
                args,
                input=None if listing else script,
                capture_output=True,
                text=True,
                timeout=NFT_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise NftError(f"nft: {err}") from err
        if done.returncode != 0:
            raise NftError(f"nft refused the change: {done.stderr.strip()[:500]}")
        return done.stdout

    def install(self, ports: Iterable[int]) -> None:
        """Create (or replace) the table with ``ports`` as the pool ports."""
        self._run(table_script(ports))
        self.installed = True

    def set_ports(self, ports: Iterable[int]) -> None:
        """Replace the pool ports."""
        found = sorted({p for p in ports if 0 < p < 65536})
        name = f"{FAMILY} {TABLE} pool_ports"
        script = f"flush set {name}\n"
        if found:
            script += f"add element {name} {{ {_elements(map(str, found))} }}\n"
        self._run(script)

    def learn(self, addresses: Iterable[tuple[str, float]]) -> None:
        """Add learned pool addresses with their lifetimes (one transaction)."""
        script = learn_script(addresses)
        if script:
            self._run(script)

    def set_members(self, prefix: str, addresses: Iterable[str]) -> None:
        """Replace the ``covered`` or ``pods`` sets (one transaction)."""
        if prefix not in ("covered", "pods"):
            raise ValueError(prefix)
        self._run(members_script(prefix, addresses))

    def counters(self) -> Counters:
        """The table's counters now."""
        out = self._run("", listing=("list", "counters", "table", FAMILY, TABLE))
        values: dict[str, int] = {}
        try:
            for item in json.loads(out).get("nftables", []):
                counter = item.get("counter") if isinstance(item, dict) else None
                if isinstance(counter, dict) and isinstance(counter.get("name"), str):
                    values[counter["name"]] = int(counter.get("packets", 0))
        except (ValueError, TypeError) as err:
            raise NftError(f"nft counters: {err}") from err
        return Counters(values.get("pod_flows", 0), values.get("blocked", 0))

    def exists(self) -> bool:
        """Whether the table is in the kernel now."""
        try:
            self._run("", listing=("list", "table", FAMILY, TABLE))
        except NftError:
            return False
        return True

    def remove(self) -> None:
        """Delete the table (and only it); nothing happens when it is absent."""
        self._run(f"add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n")
        self.installed = False


def bypassed(pod_packets_seen: int, pod_flows_counted: int, minimum: int = 20) -> bool:
    """Whether pods' traffic evidently skips the host's netfilter.

    ``pod_packets_seen`` are pod packets the capture saw at the interfaces; when at least
    ``minimum`` went by and netfilter counted not one new pod flow, the rules cannot hold.
    """
    return pod_packets_seen >= minimum and pod_flows_counted == 0

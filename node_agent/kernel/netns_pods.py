"""Which pod owns a network address on this node: pods' network namespaces read from /proc.

A pod's containers share one network namespace; its addresses are that namespace's local
addresses (``/proc/PID/net/fib_trie`` for IPv4, ``/proc/PID/net/if_inet6`` for IPv6) and its
pod is the cgroup of any process inside it (the sandbox's pause process included). This works
with or without the API (the pod's IP from the API says the same; the namespace also tells
which processes may own a socket). A scan reads one link per process and two small files per
pod namespace; ``refresh`` runs it at most every ``min_interval`` seconds, so a flood of
unknown addresses cannot turn into a flood of scans. hostNetwork pods share the host's
namespace and are not told apart by address: they are left out.

``owner`` finds the process behind a flow (local address and port) for evidence: the socket's
inode from the namespace's TCP table, then the process holding it among the namespace's
processes (those of the last scan first, then any that joined since), at most
``MAX_OWNER_PIDS`` of each searched. A flow that already closed has no owner; the pod is still
known.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node_agent import errors
from node_agent.kernel import attribution, netconn
from node_agent.kernel.procfs import ProcFS

MAX_OWNER_PIDS = 256
MAX_PIDS_PER_NETNS = 1024


@dataclass(frozen=True, slots=True)
class PodNetns:
    """One pod's network namespace: its pod and container, addresses and member processes."""

    netns: str
    pod_uid: str
    container_id: str | None
    cgroup: str
    addresses: tuple[str, ...]
    pids: tuple[int, ...]


def parse_fib_trie(text: str) -> list[str]:
    """The local (``/32 host LOCAL``) IPv4 addresses of a fib_trie, loopback left out."""
    found: list[str] = []
    last: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            last = stripped[3:].strip()
        elif "/32 host LOCAL" in stripped and last and not last.startswith("127."):
            found.append(last)
    return list(dict.fromkeys(found))


def parse_if_inet6(text: str) -> list[str]:
    """The global and unique-local IPv6 addresses of if_inet6 (no loopback, no link-local)."""
    found: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[5] == "lo" or len(fields[0]) != 32:
            continue
        if int(fields[3], 16) != 0:  # global scope only (link 0x20, host 0x10)
            continue
        try:
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
        except ValueError:
            continue
    return found


class NetnsPods:
    """address → pod's network namespace, rebuilt by scanning /proc (rate-limited)."""

    def __init__(
        self,
        proc: ProcFS,
        *,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._proc = proc
        self._min_interval = min_interval
        self._clock = clock
        self._by_address: dict[str, PodNetns] = {}
        self._last = float("-inf")
        self._lock = threading.Lock()
        self.scans = 0
        self.host_netns = self._netns(os.getpid()) or ""

    def _netns(self, pid: int) -> str | None:
        try:
            return str((self._proc.root / str(pid) / "ns" / "net").readlink())
        except OSError:
            return None

    def pod_of(self, address: str) -> PodNetns | None:
        """The pod namespace holding ``address``; rescans (rate-limited) on a miss."""
        found = self._by_address.get(address)
        if found is None and self.refresh():
            found = self._by_address.get(address)
        return found

    def pods(self) -> list[PodNetns]:
        """Every pod namespace known since the last scan."""
        return list({p.netns: p for p in self._by_address.values()}.values())

    def refresh(self, force: bool = False) -> bool:
        """Rescan if ``min_interval`` passed (or ``force``); whether a scan ran."""
        with self._lock:
            now = self._clock()
            if not force and now - self._last < self._min_interval:
                return False
            self._last = now
            self._by_address = self._scan()
            self.scans += 1
            return True

    def _scan(self) -> dict[str, PodNetns]:
        members: dict[str, list[int]] = {}
        try:
            pids = self._proc.pids()
        except errors.KernelFeatureError:
            return self._by_address
        for pid in pids:
            netns = self._netns(pid)
            if netns is None or netns == self.host_netns:
                continue
            group = members.setdefault(netns, [])
            if len(group) < MAX_PIDS_PER_NETNS:
                group.append(pid)
        found: dict[str, PodNetns] = {}
        for netns, group in members.items():
            pod = self._describe(netns, group)
            if pod is not None:
                for address in pod.addresses:
                    found[address] = pod
        return found

    def _describe(self, netns: str, group: list[int]) -> PodNetns | None:
        owner: attribution.Attribution | None = None
        addresses: list[str] = []
        for pid in group[:8]:
            try:
                owner = owner or attribution.attribute_lines(self._proc.cgroups(pid))
                if not addresses:
                    addresses = parse_fib_trie(self._proc.net_file(pid, "fib_trie"))
                    with contextlib.suppress(errors.AgentError):  # IPv6 disabled
                        addresses += parse_if_inet6(self._proc.net_file(pid, "if_inet6"))
            except errors.AgentError:
                continue
            if owner is not None and owner.in_pod and addresses:
                break
        if owner is None or owner.pod_uid is None or not addresses:
            return None
        return PodNetns(
            netns=netns,
            pod_uid=owner.pod_uid,
            container_id=owner.container_id,
            cgroup=owner.cgroup_path,
            addresses=tuple(addresses),
            pids=tuple(group),
        )

    def owner(self, pod: PodNetns, local: str, port: int) -> int | None:
        """The PID holding the TCP socket ``local:port`` in ``pod``'s namespace, if still open."""
        inode = None
        for table in ("tcp", "tcp6"):
            try:
                text = self._proc.net_file(pod.pids[0], table)
            except errors.AgentError:
                continue
            for conn in netconn.parse_table(text):
                if conn.local_port == port and conn.local_address == local and conn.inode:
                    inode = conn.inode
                    break
            if inode is not None:
                break
        if inode is None:
            return None
        found = self._holder(pod.pids[:MAX_OWNER_PIDS], inode)
        if found is None:  # a process started since the last scan: look at the namespace now
            members = [
                pid
                for pid in self._proc_pids()
                if pid not in pod.pids and self._netns(pid) == pod.netns
            ]
            found = self._holder(members[:MAX_OWNER_PIDS], inode)
        return found

    def _proc_pids(self) -> list[int]:
        try:
            return self._proc.pids()
        except errors.KernelFeatureError:
            return []

    def _holder(self, pids: Sequence[int], inode: int) -> int | None:
        for pid in pids:
            try:
                if inode in self._proc.socket_inodes(pid):
                    return pid
            except errors.AgentError:
                continue
        return None

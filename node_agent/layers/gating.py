"""What the fanotify exec gate watches and how it decides, in and out of a cluster.

In a cluster the gate marks each container's root mount (``/proc/PID/root``) the first time
the exec layer reads one of its processes: the container's own entrypoint is long-lived, so
the mark lands some 10-20 ms after the container starts, normally before anything it then
downloads can run (the entrypoint itself is admission's to judge). Containers no enforcing
policy covers (excluded namespaces, exempt images or labels) are not marked, so their execs
never wait on the agent; a new policy generation asks again. The pod is looked
up then, on the agent's loop, where waiting for the pod watch is allowed; the gate thread
only reads the cgroup of the exec'ing process and this table.

A decision weighs the file's name (a known miner binary name is enough) and its bytes (the
content scan, once per file version), under the policies covering the exec'ing pod now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from minerguard.cache import BoundedCache
from minerguard.signatures import engine
from node_agent import errors
from node_agent.counters import Counters
from node_agent.judge.agent_policy import AgentPolicies, AgentPolicy
from node_agent.judge.exe_content import ExecutableContent
from node_agent.judge.inspect_process import ProcessSnapshot
from node_agent.judge.pods import PodLookup
from node_agent.kernel import attribution
from node_agent.kernel.fanotify import Decider, GateDecision
from node_agent.kernel.procfs import ProcFS
from node_agent.layers.execwatch import judge
from node_agent.records import PodRef

log = logging.getLogger(__name__)

NAME_SIGNALS = frozenset({"miner-binary"})
"""A known miner binary name alone is enough to refuse an exec."""


def _host_rooted(root: str, hosts: tuple[str, ...]) -> bool:
    """Whether ``root`` (raises OSError if gone) is one of the ``hosts`` roots we can see."""
    st = Path(root).stat()
    for host in hosts:
        try:
            other = Path(host).stat()
        except OSError:
            continue  # e.g. /proc/1/root refused: compare with the others
        if (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino):
            return True
    return False


def _gating(policies: AgentPolicies, pod: PodRef | None) -> list[AgentPolicy]:
    """The enforcing policies that cover ``pod`` and do not exempt it.

    Never a system view (an excluded namespace): the gate refuses on a binary's name alone,
    weaker than the conclusive evidence those namespaces are acted on for.
    """
    applying, _ = policies.applying(pod)
    return [p for p in applying if p.compiled.enforcing and not p.compiled.system]


class GatedContainers:
    """The containers whose root mounts the gate watches, with the pod each belongs to."""

    def __init__(
        self,
        proc: ProcFS,
        policies: AgentPolicies,
        pods: PodLookup,
        counters: Counters,
        capacity: int = 16384,
    ) -> None:
        self._proc = proc
        self._policies = policies
        self._pods = pods
        self._counters = counters
        self._pod: BoundedCache[str, PodRef | None] = BoundedCache(capacity, locked=True)

    def cover(self, pid: int, owner: attribution.Attribution, mark: Callable[[str], None]) -> bool:
        """``mark`` (``ExecGate.mark``) the root mount of ``pid``'s container, if gated.

        False means "ask again with another process": ``pid`` still has the host's root, as
        the runtime's own init has until it pivots into the container, and marking that
        would gate every exec on the node.
        """
        pod = self._pods.lookup(owner.pod_uid, owner.container_id)
        if not _gating(self._policies, pod):
            self._counters.add("gate_containers_skipped")
            return True
        root = self._proc.task_root(pid)
        try:
            if _host_rooted(root, (self._proc.host_root(), "/")):
                self._counters.add("gate_mark_deferred")
                return False
            mark(root)
        except errors.KernelFeatureError as err:
            log.warning("exec gate: cannot mark container %s: %s", owner.key, err)
            self._counters.add("gate_mark_errors")
            return True
        except OSError:  # the process left while we looked
            return False
        self._pod.put(owner.key, pod)
        self._counters.add("gate_containers_marked")
        return True

    def pod_of(self, pid: int) -> tuple[attribution.Attribution, PodRef | None]:
        """``pid``'s cgroup owner and the pod recorded for it (None: host or unknown)."""
        owner = attribution.attribute_lines(self._proc.cgroups(pid))
        return owner, self._pod.get(owner.key)


def decider(
    policies: AgentPolicies,
    content: ExecutableContent,
    containers: GatedContainers | None = None,
) -> Decider:
    """Refuse an exec whose file is named like a miner or carries a miner's strings."""

    def decide(path: str, fd: int, pid: int) -> GateDecision:
        owner, pod = containers.pod_of(pid) if containers is not None else (None, None)
        gating = _gating(policies, pod)
        if not gating:
            return GateDecision(deny=False)
        found = content.of_fd(fd)
        snap = ProcessSnapshot(
            pid=pid,
            start_ticks=0,
            ppid=0,
            comm=path.rsplit("/", 1)[-1][:15],
            argv=(path,),
            exe=None,
            env=(),
            owner=attribution.Attribution(cgroup_path=""),
            kernel_thread=False,
            content=found,
        )
        for policy in gating:
            score, reasons = judge(snap, policy)
            named = any(r.signal in NAME_SIGNALS for r in reasons)
            if named or score >= engine.THRESHOLD:
                detail = "; ".join(r.detail for r in reasons)
                return GateDecision(deny=True, reason=f"{path}: {detail}", owner=owner)
        return GateDecision(deny=False)

    return decide

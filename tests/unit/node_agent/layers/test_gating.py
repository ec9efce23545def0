"""Which containers the exec gate marks: only covered ones, and never through the host's root."""

import os

from minerguard.compiled_policy import default_policy
from node_agent.counters import Counters
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.kernel.attribution import Attribution
from node_agent.kernel.procfs import ProcFS
from node_agent.layers.gating import GatedContainers
from node_agent.records import PodRef

OWNER = Attribution(cgroup_path="/kubepods/pod1/c1", pod_uid="1", container_id="c1")


class OnePod:
    def __init__(self, namespace: str) -> None:
        self.pod = PodRef(namespace=namespace, name="p", uid="1", container="c")

    def lookup(self, pod_uid: str | None, container_id: str | None) -> PodRef | None:
        return self.pod


def containers(namespace: str, counters: Counters) -> GatedContainers:
    return GatedContainers(ProcFS(), AgentPolicies([default_policy()]), OnePod(namespace), counters)


def test_a_container_no_enforcing_policy_covers_is_not_marked() -> None:
    counters, marked = Counters(), list[str]()
    assert containers("kube-system", counters).cover(os.getpid(), OWNER, marked.append)
    assert marked == []
    assert counters.get("gate_containers_skipped") == 1


def test_a_process_that_still_has_the_host_root_is_not_used_to_mark() -> None:
    counters, marked = Counters(), list[str]()
    # this test process's root is the host's /: marking it would gate every exec on the node
    assert not containers("apps", counters).cover(os.getpid(), OWNER, marked.append)
    assert marked == []
    assert counters.get("gate_mark_deferred") == 1

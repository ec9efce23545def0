"""The agent in the namespaces a policy excludes: alert by default, kill only on conclusive exec.

The golden /proc tree's miner (pid 100) is attributed to a pod in kube-system, which the
policy excludes. Before ``spec.systemNamespaces`` the agent did not look there at all.
"""

from __future__ import annotations

from typing import Any

from node_agent.counters import Counters
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.lineage import Lineage
from node_agent.kernel.events import EventKind, ProcEvent
from node_agent.kernel.procfs import ProcFS
from node_agent.layers.execwatch import ExecWatcher
from node_agent.output.response import ProcessKiller
from node_agent.records import Finding, PodRef
from tests import support
from tests.unit.node_agent.conftest import DATA, GOLDEN_POLICY, POD1

MINER_PID = 100


class InNamespace:
    """A pod lookup placing every container in one namespace (the API's answer, as data)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def lookup(self, pod_uid: str | None, container_id: str | None) -> PodRef | None:
        if pod_uid is None:
            return None
        return PodRef(namespace=self.namespace, name="kube-proxy-x", uid=pod_uid, image="a")


def policies(**system: Any) -> AgentPolicies:
    spec = {**GOLDEN_POLICY, "excludedNamespaces": ["kube-system"]}
    if system:
        spec["systemNamespaces"] = system
    return AgentPolicies([support.policy("golden", **spec)])


def judge(found: AgentPolicies, namespace: str = "kube-system") -> list[Finding]:
    watcher = ExecWatcher(
        _proc(),
        found,
        pods=InNamespace(namespace),
        lineage=Lineage(),
        counters=Counters(),
        include_host=False,
        ignore_pids=frozenset(),
    )
    return watcher.handle([ProcEvent(EventKind.EXEC, pid=MINER_PID, timestamp_ns=0)])


def _proc() -> ProcFS:
    return ProcFS(DATA / "proc")


def test_a_miner_in_kube_system_is_reported_as_an_alert_by_default() -> None:
    (finding,) = judge(policies())
    assert finding.pod_uid == POD1
    assert finding.policy == "golden"
    # The policy asks for Alert + KillProcess elsewhere; in kube-system, only an alert.
    assert finding.actions_requested == ("Alert",)
    killer = ProcessKiller(
        _proc(), policies(), Counters(), act_on_host=False, ignore_pids=frozenset()
    )
    assert killer.act(finding).actions_taken == ()


def test_the_same_miner_elsewhere_is_still_killed_as_the_policy_says() -> None:
    (finding,) = judge(policies(), namespace="apps")
    assert finding.actions_requested == ("Alert", "KillProcess")


def test_kill_conclusive_kills_only_exec_evidence_at_the_conclusive_score() -> None:
    (conclusive,) = judge(policies(runtime="KillConclusive", conclusiveScore=1.0))
    assert conclusive.actions_requested == ("Alert", "KillProcess")
    killer = ProcessKiller(
        _proc(),
        policies(runtime="KillConclusive", conclusiveScore=1.0),
        Counters(),
        act_on_host=False,
        ignore_pids=frozenset(),
        kill_enabled=False,  # proves the decision without signalling a real pid 100
    )
    assert killer.act(conclusive).actions_taken == ("KillProcess skipped: disabled on this node",)
    (weak,) = judge(policies(runtime="KillConclusive", conclusiveScore=100.0))
    assert weak.score < 100.0
    assert weak.actions_requested == ("Alert",)


def test_runtime_off_leaves_the_excluded_namespace_alone() -> None:
    assert judge(policies(runtime="Off")) == []


def test_the_system_view_never_blocks_network_traffic_nor_asks_the_operator_to_act() -> None:
    found = policies(runtime="KillConclusive")
    pod = InNamespace("kube-system").lookup(POD1, None)
    applying, _ = found.applying(pod)
    (view,) = applying
    assert view.compiled.system
    assert view.compiled.spec.network.block_pool_traffic is False
    assert [a.value for a in view.compiled.spec.actions.runtime] == ["Alert", "KillProcess"]

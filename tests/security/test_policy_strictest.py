"""Attack: an Audit policy whose name sorts before ``default`` switches runtime enforcement off.

The agent used to judge a process under the one policy with the highest score (ties to the
first name alphabetically), and the behaviour sampler under the first covering policy. Adding
an Audit policy named, say, ``audit`` beside the Enforce ``default`` (the README's own example)
made every exec detection name the Audit policy, so the agent did not kill and the operator,
which acts on the policy a detection names, only alerted. The webhook refused correctly but
named the Audit policy first, so the first admission record about a pod was the weaker one.

Every test here puts an Audit policy that sorts first beside an Enforce one, with the same
signatures, and checks that the Enforce action still happens.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from minerguard import compiled_policy
from minerguard.api.detection import Phase
from minerguard.api.policy import Mode, RuntimeAction
from minerguard.compiled_policy import CompiledPolicy
from minerguard_operator.decide import planning
from node_agent.counters import Counters
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.lineage import Lineage
from node_agent.judge.pods import NoPods
from node_agent.judge.poolhosts import PoolAddresses
from node_agent.kernel import cgroups
from node_agent.kernel.events import EventKind, ProcEvent
from node_agent.kernel.procfs import ProcFS
from node_agent.layers.execwatch import ExecWatcher
from node_agent.layers.sampler import Sampler
from node_agent.output import report
from node_agent.output.response import ProcessKiller
from node_agent.records import Finding, PodRef
from node_agent.settings import AgentSettings
from node_agent.wiring import build_agent
from tests.conftest import require
from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import policy, wait_for
from tests.unit.node_agent.conftest import GOLDEN_POLICY, POD1
from tests.unit.node_agent.layers.test_sampler import FakeV2Container
from tests.unit.webhook.helpers import MINER_COMMAND, Sink, container, pod, request, reviewer

DATA = Path(__file__).resolve().parents[1] / "data"
MINER_PID = 100
ENFORCE_ACTIONS = {"runtime": ["Alert", "KillProcess", "DeletePod"], "admission": "Deny"}


def audit_and_enforce(spec: dict[str, Any]) -> list[CompiledPolicy]:
    """``audit`` (Audit, sorts first) beside ``default`` (Enforce), same signatures."""
    audit = policy("audit", **{**spec, "mode": "Audit", "actions": {"runtime": ["Alert"]}})
    enforce = policy("default", **{**spec, "mode": "Enforce", "actions": ENFORCE_ACTIONS})
    return sorted([audit, enforce], key=lambda p: p.name)  # as the policy book hands them out


def louder_audit(spec: dict[str, Any]) -> list[CompiledPolicy]:
    """The Audit policy also scores higher: it adds signatures of its own."""
    extra = {
        **spec["signatures"],
        "options": ["--donate-level"],
        "walletPatterns": ["4[0-9A-Za-z]{94}"],
    }
    audit = policy(
        "audit", **{**spec, "signatures": extra, "mode": "Audit", "actions": {"runtime": ["Alert"]}}
    )
    enforce = policy("default", **{**spec, "mode": "Enforce", "actions": ENFORCE_ACTIONS})
    return [audit, enforce]


def exec_finding(policies: list[CompiledPolicy]) -> tuple[Finding, AgentPolicies]:
    agent_policies = AgentPolicies(policies)
    watcher = ExecWatcher(
        ProcFS(DATA / "proc"),
        agent_policies,
        pods=NoPods(),
        lineage=Lineage(),
        counters=Counters(),
        include_host=False,
        ignore_pids=frozenset(),
    )
    (found,) = watcher.handle([ProcEvent(EventKind.EXEC, pid=MINER_PID, timestamp_ns=0)])
    return found, agent_policies


@pytest.mark.parametrize("make", [audit_and_enforce, louder_audit])
def test_an_audit_policy_sorting_first_cannot_stop_the_exec_layer_killing(make: Any) -> None:
    found, agent_policies = exec_finding(make(GOLDEN_POLICY))
    assert (found.policy, found.mode) == ("default", "Enforce")
    assert "KillProcess" in found.actions_requested
    assert "DeletePod" in found.actions_requested
    killer = ProcessKiller(
        ProcFS(DATA / "proc"),
        agent_policies,
        Counters(),
        act_on_host=False,
        ignore_pids=frozenset(),
        kill_enabled=False,  # the golden tree's pid is not ours to kill: the decision is enough
    )
    assert killer.act(found).actions_taken == ("KillProcess skipped: disabled on this node",)


def behaviour_findings(tmp_path: Path, policies: list[CompiledPolicy]) -> list[Finding]:
    container_dir = FakeV2Container(tmp_path)
    sampler = Sampler(
        cgroups.CgroupReader(tmp_path),
        ProcFS(DATA / "proc"),
        AgentPolicies(policies),
        pods=NoPods(),
        lineage=Lineage(),
        counters=Counters(),
        pool_addresses=PoolAddresses(),
        wall=lambda: 1_700_000_000.0,
    )
    findings: list[Finding] = []
    for tick in range(12):
        findings += sampler.tick(now=tick * 5.0)
        container_dir.burn(5.0, 1.0)
    return findings


def test_an_audit_policy_sorting_first_cannot_stop_the_behaviour_layer_acting(
    tmp_path: Path,
) -> None:
    findings = behaviour_findings(tmp_path, audit_and_enforce(GOLDEN_POLICY))
    assert [(f.policy, f.mode) for f in findings] == [("default", "Enforce")]
    assert "KillProcess" in findings[0].actions_requested


def test_a_lower_threshold_audit_policy_alerts_first_and_the_enforce_one_still_acts(
    tmp_path: Path,
) -> None:
    """The lowest threshold decides detection; a weaker early alert never mutes a later act."""
    sensitive = {**GOLDEN_POLICY, "behaviour": {"windowSeconds": 120, "scoreThreshold": 0.3}}
    audit = policy("audit", **{**sensitive, "mode": "Audit", "actions": {"runtime": ["Alert"]}})
    enforce = policy("default", **{**GOLDEN_POLICY, "actions": ENFORCE_ACTIONS})
    findings = behaviour_findings(tmp_path, [audit, enforce])
    assert [(f.policy, f.mode) for f in findings] == [("audit", "Audit"), ("default", "Enforce")]
    assert findings[0].score < findings[1].score


def test_the_operator_acts_on_the_agents_detection_beside_an_audit_policy() -> None:
    policies = audit_and_enforce(GOLDEN_POLICY)
    found, _ = exec_finding(policies)
    pod_ref = PodRef(
        namespace="apps",
        name="web-1",
        uid=POD1,
        container="c",
        image="docker.io/x/app:1",
    )
    detection = report.to_detection(found, pod_ref, "node-1")
    named = {p.name: p for p in policies}[detection.spec.policy or ""]
    target = planning.Target(namespace="apps", image="docker.io/x/app:1")
    planned = planning.plan(detection, named, target, policy_name=named.name)
    assert planned.phase is Phase.ACTED
    assert RuntimeAction.DELETE_POD in planned.steps


def test_strictest_ranks_acting_before_reporting_whatever_the_names() -> None:
    policies = audit_and_enforce(GOLDEN_POLICY)
    assert compiled_policy.strictest(policies) is policies[1]
    assert policies[1].spec.mode is Mode.ENFORCE


async def test_the_webhook_refuses_and_names_the_enforce_policy_first() -> None:
    sink = Sink()
    spec = {"builtinSignatures": True}
    answer = await reviewer(audit_and_enforce(spec), sink=sink).review(
        request(pod(container("miner", command=MINER_COMMAND)))
    )
    assert not answer.allowed
    assert 'MinerPolicy "default"' in answer.message
    first, _ = sink.items[0]
    assert first is not None
    assert (first.spec.policy, first.spec.mode) == ("default", "Enforce")
    assert answer.findings[0].policy.name == "default"


def test_the_real_agent_kills_a_miner_beside_an_audit_policy_that_sorts_first(
    tmp_path: Path,
) -> None:
    """The real agent (proc connector, real cgroups, a real process) with both policies."""
    require(os.geteuid() == 0, "kubelet-shaped cgroups and the proc connector need root")
    from tests.integration.node_agent.conftest import Collect, Pod

    spec = {
        "builtinSignatures": True,
        "signatures": {"binaries": ["xmrig"]},
        "behaviour": {"windowSeconds": 10},
    }
    miner = Pod()
    try:
        binary = tmp_path / "xmrig"
        shutil.copy(Path(sys.executable).resolve(), binary)
        settings = AgentSettings(
            no_cluster=True,
            sample_interval=0.5,
            rescan_interval=1.0,
            discover_every=1,
            include_host_processes=False,
            event_source="connector",
            status_interval=3600,
        )
        sink = Collect()
        agent = build_agent(settings, sink, policies=audit_and_enforce(spec))
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, kwargs={"duration": 30, "stop": stop})
        thread.start()
        try:
            time.sleep(0.2)
            process = miner.spawn(
                [
                    str(binary),
                    "-c",
                    "import time; time.sleep(20)",
                    "-o",
                    "stratum+tcp://127.0.0.1:3333",
                ]
            )
            found = sink.wait_for(miner, "Exec", timeout=10)
            process.wait(timeout=10)
        finally:
            stop.set()
            thread.join(timeout=10)
            agent.close()
    finally:
        miner.cleanup()
    assert (found.policy, found.mode) == ("default", "Enforce")
    assert found.actions_taken[0].startswith("KillProcess: killed"), found.actions_taken
    assert process.returncode == -9


def test_the_operator_carries_out_what_every_covering_policy_asks_for_together() -> None:
    """``a-stop`` (StopOwner only, sorts first) beside ``default`` (DeletePod): both happen.

    The detection names one policy; the operator used to carry out that policy's actions only,
    so a bare pod (no owner to stop) under ``a-stop`` was never deleted.
    """
    stop_owner = policy("a-stop", **{**GOLDEN_POLICY, "actions": {"runtime": ["StopOwner"]}})
    delete = policy("default", **{**GOLDEN_POLICY, "actions": {"runtime": ["DeletePod"]}})
    found, _ = exec_finding([stop_owner, delete])
    detection = report.to_detection(found, PodRef(namespace="apps", name="web-1", uid=POD1), None)
    named = {"a-stop": stop_owner, "default": delete}[detection.spec.policy or ""]
    target = planning.Target(namespace="apps", image="docker.io/x/app:1")
    planned = planning.plan(
        detection, named, target, policy_name=named.name, covering=[stop_owner, delete]
    )
    assert planned.steps == (RuntimeAction.STOP_OWNER, RuntimeAction.DELETE_POD)
    assert planned.phase is Phase.ACTED


def test_the_operator_acts_under_another_enforce_policy_when_the_named_one_exempts_the_pod() -> (
    None
):
    """Policy generations seen by the agent and the operator may differ: weigh them all."""
    exempting = policy(
        "default",
        **{**GOLDEN_POLICY, "actions": {"runtime": ["Alert"]}},
        exemptions={"images": ["docker.io/x/*"]},
    )
    deleting = policy("strict", **{**GOLDEN_POLICY, "actions": {"runtime": ["DeletePod"]}})
    found, _ = exec_finding([deleting])
    detection = report.to_detection(found, PodRef(namespace="apps", name="web-1", uid=POD1), None)
    target = planning.Target(namespace="apps", image="docker.io/x/app:1")
    planned = planning.plan(
        detection, exempting, target, policy_name="default", covering=[exempting, deleting]
    )
    assert planned.steps == (RuntimeAction.DELETE_POD,)
    assert 'decided by MinerPolicy "strict"' in " ".join(planned.notes)
    alone = planning.plan(detection, exempting, target, policy_name="default")
    assert alone.phase is Phase.SKIPPED


@pytest.mark.slow
def test_the_real_operator_deletes_a_bare_pod_a_policy_sorting_first_would_leave(
    kube: EmulatorThread,
) -> None:
    """Real kopf and client on the emulator: ``a-stop`` asks StopOwner, ``default`` DeletePod."""
    cluster = Cluster(kube.url)
    try:
        cluster.policy("a-stop", actions={"runtime": ["Alert", "StopOwner"]})
        cluster.policy("default", actions={"runtime": ["Alert", "DeletePod"]})
        bare = cluster.pod("miner-pod")
        with running(kube.url):
            wait_for(
                lambda: all(
                    cluster.get_policy(name).get("status", {}).get("observedGeneration")
                    for name in ("a-stop", "default")
                ),
                what="both policies seen by the operator",
            )
            cluster.detection("miner-1", bare["metadata"]["name"], policy="a-stop")
            status = cluster.settled("miner-1")
        assert status["phase"] == "Acted", status
        assert not cluster.exists("Pod", "miner-pod")
        assert any(taken.startswith("DeletePod") for taken in status["actionsTaken"]), status
    finally:
        cluster.api.close()

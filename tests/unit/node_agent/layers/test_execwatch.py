"""The exec watcher on the golden /proc tree: batching, the verdict cache, policy swaps."""

from minerguard import compiled_policy
from node_agent.counters import Counters
from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.lineage import Lineage
from node_agent.judge.pods import NoPods
from node_agent.kernel.attribution import Attribution
from node_agent.kernel.events import EventKind, ProcEvent
from node_agent.kernel.procfs import ProcFS
from node_agent.layers.execwatch import ExecWatcher
from tests import support
from tests.unit.node_agent.conftest import GOLDEN_POLICY, POD1

MINER_PID = 100


def watcher(proc: ProcFS, policies: AgentPolicies, counters: Counters, **kw: object) -> ExecWatcher:
    return ExecWatcher(
        proc,
        policies,
        pods=NoPods(),
        lineage=Lineage(),
        counters=counters,
        include_host=False,
        ignore_pids=frozenset(),
        **kw,  # type: ignore[arg-type]
    )


def exec_event(pid: int) -> ProcEvent:
    return ProcEvent(EventKind.EXEC, pid=pid, timestamp_ns=0)


def test_an_exec_whose_exit_is_in_the_same_batch_is_not_read(
    proc: ProcFS, golden_policies: AgentPolicies
) -> None:
    counters = Counters()
    exited = [exec_event(MINER_PID), ProcEvent(EventKind.EXIT, pid=MINER_PID, timestamp_ns=1)]
    assert watcher(proc, golden_policies, counters).handle(exited) == []
    assert counters.get("exec_exited_in_batch") == 1
    assert counters.get("exec_inspected") == 0


def test_an_exit_before_the_exec_of_a_reused_pid_does_not_hide_it(
    proc: ProcFS, golden_policies: AgentPolicies
) -> None:
    reused = [ProcEvent(EventKind.EXIT, pid=MINER_PID, timestamp_ns=0), exec_event(MINER_PID)]
    found = watcher(proc, golden_policies, Counters()).handle(reused)
    assert [f.pod_uid for f in found] == [POD1]


def test_the_same_command_is_judged_by_the_engine_once_per_policy_generation(
    proc: ProcFS, golden_policies: AgentPolicies
) -> None:
    counters = Counters()
    watch = watcher(proc, golden_policies, counters, memory=0)  # no per-process memo
    assert len(watch.handle([exec_event(MINER_PID)])) == 1
    assert len(watch.handle([exec_event(MINER_PID)])) == 1
    assert counters.get("verdict_cache_hits") == 1

    no_signatures: dict[str, list[str]] = {"binaries": [], "poolHosts": [], "poolPorts": []}
    golden_policies.update(
        [support.policy("golden", **{**GOLDEN_POLICY, "signatures": no_signatures})]
    )
    assert watch.handle([exec_event(MINER_PID)]) == [], "a new generation is judged afresh"
    assert counters.get("verdict_cache_hits") == 1


def test_the_agents_own_pod_is_never_judged(proc: ProcFS, golden_policies: AgentPolicies) -> None:
    counters = Counters()
    watch = watcher(proc, golden_policies, counters, ignore_pods={POD1})
    assert watch.handle([exec_event(MINER_PID)]) == []
    assert counters.get("exec_self_skipped") == 1


def test_a_young_exec_settles_and_is_never_read_if_it_exits_meanwhile(
    proc: ProcFS, golden_policies: AgentPolicies
) -> None:
    counters = Counters()
    now = [1_000_000_000]
    watch = watcher(proc, golden_policies, counters, monotonic_ns=lambda: now[0])
    young = ProcEvent(EventKind.EXEC, pid=MINER_PID, timestamp_ns=now[0] - 4_000_000)
    assert watch.handle([young]) == []
    assert watch.due == (young.timestamp_ns + 10_000_000) / 1e9
    assert counters.get("exec_inspected") == 0
    now[0] += 20_000_000
    assert watch.handle([ProcEvent(EventKind.EXIT, pid=MINER_PID, timestamp_ns=now[0])]) == []
    assert counters.get("exec_exited_in_batch") == 1
    assert counters.get("exec_inspected") == 0
    assert watch.due is None


def test_a_settled_exec_is_read_on_the_next_batch_even_an_empty_one(
    proc: ProcFS, golden_policies: AgentPolicies
) -> None:
    now = [1_000_000_000]
    watch = watcher(proc, golden_policies, Counters(), monotonic_ns=lambda: now[0])
    assert watch.handle([ProcEvent(EventKind.EXEC, pid=MINER_PID, timestamp_ns=now[0])]) == []
    now[0] += 10_000_000
    assert [f.pod_uid for f in watch.handle([])] == [POD1]
    assert watch.due is None


def test_each_container_is_offered_to_the_gate_once_per_policy_generation(
    proc: ProcFS, golden_policies: AgentPolicies
) -> None:
    offered: list[str | None] = []

    def on_container(pid: int, owner: Attribution) -> bool:
        offered.append(owner.pod_uid)
        return True

    watch = watcher(proc, golden_policies, Counters(), memory=0, on_container=on_container)
    watch.handle([exec_event(MINER_PID)])
    watch.handle([exec_event(MINER_PID)])
    assert offered == [POD1]
    golden_policies.update([compiled_policy.default_policy()])
    watch.handle([exec_event(MINER_PID)])
    assert offered == [POD1, POD1]

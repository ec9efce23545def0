"""The exec layer judges the program actually run, and weighs hidden code as masquerade."""

from __future__ import annotations

from node_agent.judge.agent_policy import AgentPolicies
from node_agent.judge.inspect_process import ProcessSnapshot
from node_agent.kernel.attribution import attribute
from node_agent.kernel.procfs import Executable
from node_agent.layers.execwatch import MASQUERADE_CAP, judge
from tests.support import policy

POLICY = AgentPolicies([policy("p", builtinSignatures=True)]).policies[0]
OWNER = attribute("/kubepods/burstable/pod0f6c1d2e-3b4a-4c5d-8e9f-a0b1c2d3e4f5/" + "a1" * 32)


def snap(argv: tuple[str, ...], exe: str, **more: object) -> ProcessSnapshot:
    return ProcessSnapshot(
        pid=7,
        start_ticks=1,
        ppid=1,
        comm="ld-linux-x86-64",
        argv=argv,
        exe=Executable(exe, deleted=False),
        env=(),
        owner=OWNER,
        kernel_thread=False,
        **more,  # type: ignore[arg-type]
    )


def test_behind_the_loader_the_programs_name_path_and_argv_are_judged() -> None:
    loaded = snap(
        ("/lib64/ld-linux-x86-64.so.2", "/w/.x/xmrig", "--donate-level=1"),
        "/w/.x/xmrig",
        launcher="run through the dynamic loader /lib64/ld-linux-x86-64.so.2",
        program_start=1,
    )
    score, reasons = judge(loaded, POLICY)
    signals = {r.signal: r for r in reasons}
    assert {"miner-binary", "hidden-directory", "launcher"} <= set(signals)
    assert signals["launcher"].weight == 0
    assert "comm-renamed" not in signals, "the loader's comm is not a rename"
    assert score >= 1.0


def test_hidden_code_counts_within_the_masquerade_budget_at_exec() -> None:
    hidden = snap(
        ("/tmp/.x/python3", "-"),
        "/tmp/.x/python3",
        hidden_code="reads its program from stdin (pipe:[1])",
    )
    score, reasons = judge(hidden, POLICY)
    assert "code-not-on-command-line" in {r.signal for r in reasons}
    assert score <= MASQUERADE_CAP, "masquerade and hidden code alone never detect at exec"

"""Earned verdicts: the same bytes and argv in the same pod, and nothing else."""

from __future__ import annotations

from node_agent.judge.earned import EarnedVerdicts
from node_agent.records import Finding

FINDING = Finding(layer="Behaviour", score=1.3, reasons=(), policy="p", mode="Enforce",
                  observed_at=0.0, cgroup="/x", pod_uid="pod-a", pid=42)  # fmt: skip
EXE = (1, 2, 3, 4)


def test_a_copy_in_the_same_pod_is_recalled_and_nothing_else_is() -> None:
    earned = EarnedVerdicts()
    earned.remember("pod-a", EXE, ("python3", "-"), FINDING)
    assert earned.has_pod("pod-a")
    assert not earned.has_pod("pod-b")
    assert not earned.has_pod(None)
    recalled = earned.recall("pod-a", EXE, ("python3", "-"))
    assert recalled is not None
    assert recalled.pid == 42
    assert earned.recall("pod-b", EXE, ("python3", "-")) is None, "another pod"
    assert earned.recall("pod-a", (1, 2, 3, 5), ("python3", "-")) is None, "other bytes"
    assert earned.recall("pod-a", EXE, ("python3", "app.py")) is None, "other arguments"


def test_memory_is_bounded_and_forgets_pods_with_it() -> None:
    earned = EarnedVerdicts(capacity=2)
    for index in range(3):
        earned.remember(f"pod-{index}", EXE, ("x",), FINDING)
    assert not earned.has_pod("pod-0")
    assert earned.has_pod("pod-2")

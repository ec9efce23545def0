"""What reading a reported process's ancestry costs (lineage, entry, executable origin).

The agent reads it only for a finding about to be reported, never per exec; this prints the
time per finding for chains of 1, 4 and 16 ancestors (the bound), next to the per-exec snapshot
the exec layer takes anyway, for scale. Nested shells all in this process's cgroup stand in for
a container's processes.

Run: .venv/bin/python bench/agent_ancestry.py
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from node_agent import errors
from node_agent.counters import Counters
from node_agent.judge.ancestry import Investigator
from node_agent.judge.inspect_process import snapshot
from node_agent.judge.lineage import Lineage
from node_agent.kernel.procfs import ProcFS

ROUNDS = 300
CHAIN = '#!/bin/sh\nif [ "$1" -gt 0 ]; then "$0" $(($1 - 1)); true; else sleep 60; fi\n'


def leaf_of(proc: ProcFS, top: int) -> int:
    """The deepest descendant of ``top`` (each level has one child)."""
    current = top
    while True:
        kids = [p for p in proc.pids() if _ppid(proc, p) == current]
        if not kids:
            return current
        current = kids[0]


def _ppid(proc: ProcFS, pid: int) -> int | None:
    try:
        return proc.stat(pid).ppid
    except errors.AgentError:  # vanished: skipped
        return None


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """p50 and p99 in microseconds."""
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    proc = ProcFS()
    investigator = Investigator(proc, Lineage(), Counters())
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "chain.sh"
        script.write_text(CHAIN)
        script.chmod(0o755)
        print(f"{'ancestors read':>16} {'p50 µs':>8} {'p99 µs':>8}   per-exec snapshot p50 µs")
        for depth in (0, 3, 15):
            chain = subprocess.Popen([str(script), str(depth)], start_new_session=True)
            try:
                time.sleep(0.3 + depth * 0.02)
                leaf = leaf_of(proc, chain.pid)
                found = investigator.describe(leaf)
                links = len(found.lineage) if found else 0
                p50, p99 = timed(lambda leaf=leaf: investigator.describe(leaf))  # type: ignore[misc]
                snap, _ = timed(lambda leaf=leaf: snapshot(proc, leaf, with_env=False))  # type: ignore[misc]
                print(f"{links:>16} {p50:8.0f} {p99:8.0f}   {snap:8.0f}")
            finally:
                os.killpg(chain.pid, signal.SIGKILL)  # the chain's own process group
                chain.wait()


if __name__ == "__main__":
    main()

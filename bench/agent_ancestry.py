"""What reading a reported process's ancestry costs (lineage, entry, executable origin).

The agent reads it only for a finding about to be reported, never per exec; this prints the
time per finding for chains of 1, 4 and 16 ancestors (the bound), next to the per-exec snapshot
the exec layer takes anyway, for scale. Nested shells all in this process's cgroup stand in for
a container's processes. Then: the same for an orphan whose parent exited (the walk goes on
through the lineage's record of it), what the lineage costs per process event (on the exec
hot path: fork + exit of a process that leaves nothing behind, and one the exec layer read),
and the memory of the lineage's records at their bounds.

Run: .venv/bin/python bench/agent_ancestry.py
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from node_agent import errors
from node_agent.counters import Counters
from node_agent.judge.ancestry import Investigator
from node_agent.judge.inspect_process import snapshot
from node_agent.judge.lineage import COMMAND_LIMIT, EXITED_CAPACITY, Lineage
from node_agent.kernel.procfs import CLOCK_TICKS, ProcFS

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
    orphan(proc)
    per_event()
    memory()


def orphan(proc: ProcFS) -> None:
    """An orphan traced through its exited parent, as the lineage recorded it."""
    lineage = Lineage()
    investigator = Investigator(proc, lineage, Counters())
    shell = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    out, _ = shell.communicate(timeout=10)
    child = int(out)
    try:
        me = os.getpid()
        tick_ns = int(1e9 / CLOCK_TICKS)
        lineage.fork(shell.pid, me, proc.stat(me).start_ticks * tick_ns + tick_ns)
        lineage.fork(child, shell.pid, proc.stat(child).start_ticks * tick_ns)
        lineage.exit(shell.pid, proc.stat(child).start_ticks * tick_ns + 1)
        found = investigator.describe(child)
        exited = sum(1 for link in found.lineage if link.exited) if found else 0
        p50, p99 = timed(lambda: investigator.describe(child))
        print(f"{'orphan, 1 exited':>16} {p50:8.0f} {p99:8.0f}   ({exited} exited link)")
    finally:
        os.kill(child, signal.SIGKILL)


def per_event() -> None:
    """Nanoseconds of lineage work per process (its fork and exit events; the exec layer's note)."""
    lineage = Lineage()
    rounds = 200_000
    start = time.perf_counter_ns()
    for pid in range(1000, 1000 + rounds):
        lineage.fork(pid, 1, pid)
        lineage.exit(pid, pid + 1)
    leaf = (time.perf_counter_ns() - start) / rounds
    start = time.perf_counter_ns()
    for pid in range(1000, 1000 + rounds):
        lineage.fork(pid, 1, pid)
        lineage.observe(pid, 1)
        lineage.seen(
            pid, container="pod/c", start_ticks=pid, command_line="sh -c make", executable="/bin/sh"
        )
        lineage.exit(pid, pid + 1)
    read = (time.perf_counter_ns() - start) / rounds
    print(f"\nlineage per process: fork+exit {leaf:.0f} ns; fork+observe+seen+exit {read:.0f} ns")


def memory() -> None:
    """Bytes the lineage holds at its bounds (live records; exited ones with long commands)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    live = Lineage()
    for pid in range(2, 65538):
        live.fork(pid, 1, pid)
    full = tracemalloc.get_traced_memory()[0] - base
    base = tracemalloc.get_traced_memory()[0]
    kept = Lineage()
    command = "sh -c " + "x" * COMMAND_LIMIT
    for pid in range(2, 2 + EXITED_CAPACITY):  # each leaves a child running: all are kept
        kept.fork(pid, 1, pid)
        kept.seen(pid, container="pod/c", start_ticks=pid, command_line=f"{pid}{command}")
        kept.fork(pid + 100_000, pid, pid + 1)
        kept.exit(pid, pid + 2)
    exited = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(
        f"lineage memory: {len(live)} live records {full / 2**20:.1f} MiB; "
        f"{kept.exited_count} exited records with {COMMAND_LIMIT}-char commands "
        f"(and their {len(kept)} live children) {exited / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()

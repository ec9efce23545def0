"""The exec gate's cost and refuse delay: what fanotify FAN_OPEN_EXEC_PERM adds to every exec
on a gated mount, and how long a refused exec takes to fail.

On a test tmpfs: exec of an allowed binary without the gate, with it (content verdict cached),
and the first exec of a fresh 8 MiB binary (one content scan); then the exec of a binary
carrying a stratum client's strings, from spawn to EACCES. The gate runs in its own process,
as the agent does: a process that holds the GIL across posix_spawn cannot answer for itself.

Run as root: .venv/bin/python bench/agent_gate.py   (about 10 s)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

RUNS = 300
GATE = """
import signal, sys, threading
from pathlib import Path
from minerguard.compiled_policy import default_policy
from minerguard.signatures.content import builtin_scanner
from node_agent.layers import gating
from node_agent.judge.exe_content import ExecutableContent
from node_agent.kernel.fanotify import ExecGate
from node_agent.judge.agent_policy import AgentPolicies
content = ExecutableContent(builtin_scanner())
gate = ExecGate([Path(sys.argv[1])], gating.decider(AgentPolicies([default_policy()]), content))
gate.start()
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
print("ready", flush=True)
done.wait(120)
gate.stop()
print(f"gate: allowed={gate.allowed} denied={gate.denied} failed_open={gate.failed_open}"
      f" content scans={content.scanned}")
"""
MINER_STRINGS = b"\0stratum+tcp://%s\0mining.subscribe\0"


def spawn_ms(path: Path) -> float:
    """Milliseconds from posix_spawn to the child reaped (or the exec refused)."""
    start = time.perf_counter()
    try:
        pid = os.posix_spawn(str(path), [str(path)], {})
        os.waitpid(pid, 0)
    except PermissionError:
        pass
    return (time.perf_counter() - start) * 1e3


def series(run: Callable[[], float], n: int = RUNS) -> tuple[float, float]:
    samples = sorted(run() for _ in range(n))
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root")
    mount = Path(tempfile.mkdtemp(prefix="mg-gate-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", f"mg-{uuid.uuid4().hex[:8]}", str(mount)],
        check=True,
    )
    rows: list[tuple[str, float, float]] = []
    try:
        allowed = mount / "true"
        shutil.copy("/bin/true", allowed)
        miner = mount / "app"
        miner.write_bytes(Path("/bin/true").read_bytes() + MINER_STRINGS)
        miner.chmod(0o755)
        rows.append(("exec, no gate", *series(lambda: spawn_ms(allowed))))
        gate = subprocess.Popen(
            [sys.executable, "-c", GATE, str(mount)],
            cwd=Path(__file__).resolve().parents[1],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert gate.stdout is not None
            if gate.stdout.readline().strip() != "ready":
                sys.exit("the gate did not start")
            rows.append(("exec, gated (verdict cached)", *series(lambda: spawn_ms(allowed))))

            def fresh() -> float:
                big = mount / f"big-{uuid.uuid4().hex[:6]}"
                big.write_bytes(Path("/bin/true").read_bytes() + os.urandom(8 << 20))
                big.chmod(0o755)
                try:
                    return spawn_ms(big)
                finally:
                    big.unlink()

            rows.append(("first exec of a new 8 MiB binary, gated", *series(fresh, 20)))
            rows.append(("miner exec refused (spawn -> EACCES)", *series(lambda: spawn_ms(miner))))
        finally:
            gate.terminate()
            stats, _ = gate.communicate(timeout=10)
        print(f"{'measure (ms)':45} {'p50':>8} {'p99':>8}")
        for name, p50, p99 in rows:
            print(f"{name:45} {p50:8.3f} {p99:8.3f}")
        print(stats.strip())
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


if __name__ == "__main__":
    main()

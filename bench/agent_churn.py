"""Agent CPU (user and system, fraction of one core) while ~1,000 processes/s start and exit,
on the host and inside a pod: the churn cost alone, without 250 containers to sample.

Quick enough (about 30 s) to compare two revisions back to back on a machine whose speed
drifts: run it in each checkout (``PYTHONPATH=<checkout>`` picks which agent runs).

Run as root: .venv/bin/python bench/agent_churn.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_overhead import CONTROLLERS, churn, cpu_times, make_containers, remove


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root")
    dirs = make_containers(2)
    pod = list(dirs[: len(CONTROLLERS)])
    env = dict(os.environ, MINERGUARD_AGENT_INCLUDE_HOST_PROCESSES="false")
    agent = subprocess.Popen(
        [sys.executable, "-m", "node_agent", "--no-cluster", "--duration", "40"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(5)
        print(f"{'churn (~1000 proc/s, 10 s)':28} {'user':>7} {'system':>7} {'total':>7}  started")
        for name, cgroups in (("on the host", None), ("inside a pod", pod)):
            (u0, s0), t0 = cpu_times(agent.pid), time.monotonic()
            started = churn(1000, 10, cgroups)
            (u1, s1), t1 = cpu_times(agent.pid), time.monotonic()
            user, system = (u1 - u0) / (t1 - t0), (s1 - s0) / (t1 - t0)
            print(f"{name:28} {user:7.3f} {system:7.3f} {user + system:7.3f}  {started}")
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        remove(dirs)


if __name__ == "__main__":
    main()

"""Agent CPU (fraction of one core) and RSS: 250 container cgroups at the default sampling
interval, then ~1,000 processes/s starting and exiting (on the host, then inside a pod).

Run as root: .venv/bin/python bench/agent_overhead.py   (about 75 s)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "blkio")
TICK = os.sysconf("SC_CLK_TCK")


def own(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return path.strip("/")
    return ""


def make_containers(count: int) -> list[Path]:
    made = []
    for i in range(count // 2):
        uid = str(uuid.uuid4())
        qos = "burstable" if i % 2 else "besteffort"
        for _ in range(2):
            cid = uuid.uuid4().hex * 2
            for c in CONTROLLERS:
                d = ROOT / c / own(c) / "kubepods" / qos / f"pod{uid}" / cid
                d.mkdir(parents=True, exist_ok=True)
                made.append(d)
    return made


def remove(dirs: list[Path]) -> None:
    for d in dirs:
        for level in (d, d.parent):
            with contextlib.suppress(OSError):
                level.rmdir()
    for c in CONTROLLERS:
        for qos in ("burstable", "besteffort", ""):
            with contextlib.suppress(OSError):
                (ROOT / c / own(c) / "kubepods" / qos).rmdir()


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def rss_mib(pid: int) -> tuple[float, float]:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def churn(rate: int, seconds: float, cgroup_dirs: list[Path] | None) -> int:
    """Start and reap ~rate processes per second of /bin/true."""

    def join() -> None:
        for d in cgroup_dirs or []:
            (d / "cgroup.procs").write_text("0")

    script = (
        "import os,sys,time\n"
        "rate,secs=int(sys.argv[1]),float(sys.argv[2]);n=0;t0=time.monotonic()\n"
        "while time.monotonic()-t0<secs:\n"
        "    target=int((time.monotonic()-t0)*rate)\n"
        "    while n<target:\n"
        "        pid=os.posix_spawn('/bin/true',['/bin/true'],{});os.waitpid(pid,0);n+=1\n"
        "    time.sleep(0.002)\n"
        "print(n)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(rate), str(seconds)],
        preexec_fn=join if cgroup_dirs else None,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    return int(out.stdout.strip() or 0)


def measure(pid: int, seconds: float, work: object = None) -> tuple[float, float, float]:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    if callable(work):
        work()
    else:
        time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    rss, hwm = rss_mib(pid)
    return (c1 - c0) / (t1 - t0), rss, hwm


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root")
    dirs = make_containers(250)
    pod_dirs = list(dirs[: len(CONTROLLERS)])
    env = dict(os.environ, MINERGUARD_AGENT_INCLUDE_HOST_PROCESSES="false")
    agent = subprocess.Popen(
        [sys.executable, "-m", "node_agent", "--no-cluster", "--duration", "110"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        time.sleep(6)  # start-up and first discovery
        rows.append(("250 containers, idle node, 5 s sampling", *measure(agent.pid, 30)))
        counted: list[int] = []
        rows.append(
            (
                "+ ~1000 proc/s on the host",
                *measure(agent.pid, 0, lambda: counted.append(churn(1000, 15, None))),
            )
        )
        rows.append(
            (
                "+ ~1000 proc/s inside a pod",
                *measure(agent.pid, 0, lambda: counted.append(churn(1000, 15, pod_dirs))),
            )
        )
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        remove(dirs)
    print(f"{'scenario':45} {'CPU (cores)':>12} {'RSS MiB':>8} {'peak MiB':>9}")
    for name, cpu, rss, hwm in rows:
        print(f"{name:45} {cpu:12.3f} {rss:8.1f} {hwm:9.1f}")
    print(f"processes started per churn phase: {counted} (15 s each)")


if __name__ == "__main__":
    main()

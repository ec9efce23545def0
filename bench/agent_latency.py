"""Detection latency: exec signature (exec → report), behaviour (unsigned miner with a pool
connection, default policy and sampling), and the kill delay.

Run as root: .venv/bin/python bench/agent_latency.py   (about 60 s)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from minerguard import compiled_policy
from node_agent.records import Finding, PodRef
from node_agent.settings import AgentSettings
from node_agent.wiring import build_agent

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "blkio")


def own(c: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if c in ctrls.split(","):
            return path.strip("/")
    return ""


class Sink:
    def __init__(self) -> None:
        self.found: list[tuple[float, Finding]] = []

    def emit(self, finding: Finding, pod: PodRef | None) -> None:
        self.found.append((time.monotonic(), finding))


def pod_dirs() -> tuple[str, list[Path]]:
    uid = str(uuid.uuid4())
    cid = uuid.uuid4().hex * 2
    dirs = [ROOT / c / own(c) / "kubepods" / "burstable" / f"pod{uid}" / cid for c in CONTROLLERS]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return uid, dirs


def cleanup(dirs: list[Path]) -> None:
    time.sleep(0.2)
    for d in dirs:
        for level in (d, d.parent, d.parent.parent, d.parent.parent.parent):
            with contextlib.suppress(OSError):
                level.rmdir()


def pool_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(4096)
            conn.sendall(json.dumps({"id": 1, "result": {"status": "OK"}}).encode() + b"\n")

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


MINER = (
    "import hashlib,socket,sys,time\n"
    "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])));"
    's.sendall(b\'{"id":1,"method":"login","params":{}}\\n\');s.recv(999)\n'
    "h=hashlib.sha256();end=time.monotonic()+float(sys.argv[2])\n"
    "while time.monotonic()<end: h.update(b'x'*64)\n"
)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root")
    server, port = pool_server()
    text = (
        "apiVersion: minerguard.io/v1alpha1\nkind: MinerPolicy\nmetadata: {name: bench}\n"
        f"spec:\n  signatures: {{poolPorts: [{port}]}}\n"
        "  actions: {runtime: [Alert, KillProcess]}\n  rateLimit: {maxActions: 100}\n"
    )
    compiled = compiled_policy.compile_policy(
        compiled_policy.parse_policy(yaml.safe_load(text), "bench")
    )
    sink = Sink()
    settings = AgentSettings(
        no_cluster=True, include_host_processes=False, event_source="connector"
    )
    agent = build_agent(settings, sink, policies=[compiled])
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, kwargs={"duration": 100, "stop": stop})
    thread.start()
    uid, dirs = pod_dirs()

    def join() -> None:
        for d in dirs:
            (d / "cgroup.procs").write_text("0")

    tmp = Path(tempfile.mkdtemp())
    exec_lat, kill_delay = [], []
    try:
        time.sleep(0.5)
        binary = tmp / "xmrig"
        shutil.copy(Path(sys.executable).resolve(), binary)
        for _ in range(20):
            before = len(sink.found)
            started = time.monotonic()
            proc = subprocess.Popen(
                [str(binary), "-c", "import time; time.sleep(2)", "--donate-level=1"],
                preexec_fn=join,  # noqa: PLW1509
            )
            proc.wait(timeout=5)
            died = time.monotonic()
            new = [f for _, f in sink.found[before:] if f.pod_uid == uid and f.layer == "Exec"]
            if new and new[0].latency_s is not None:
                exec_lat.append(new[0].latency_s * 1000)
                kill_delay.append((died - started) * 1000)
        started = time.monotonic()
        miner = subprocess.Popen(
            [sys.executable, "-c", MINER, str(port), "60"],
            preexec_fn=join,  # noqa: PLW1509
        )
        miner.wait(timeout=70)
        behaviour_s = time.monotonic() - started
        found = [f for _, f in sink.found if f.pod_uid == uid and f.layer == "Behaviour"]
        detected = [
            t - started for t, f in sink.found if f.pod_uid == uid and f.layer == "Behaviour"
        ]
    finally:
        stop.set()
        thread.join(timeout=10)
        server.close()
        cleanup(dirs)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'measure':55} {'p50':>9} {'max':>9}  n")
    print(
        f"{'exec signature: kernel exec event -> report (ms)':55} "
        f"{statistics.median(exec_lat):9.2f} {max(exec_lat):9.2f}  {len(exec_lat)}"
    )
    print(
        f"{'exec + KillProcess: spawn -> process dead (ms)':55} "
        f"{statistics.median(kill_delay):9.2f} {max(kill_delay):9.2f}  {len(kill_delay)}"
    )
    kills = [f.actions_taken for f in found]
    first = detected[0] if detected else -1.0
    print(f"{'behaviour: unsigned miner start -> report (s)':55} {first:9.2f}")
    print(
        f"{'behaviour: unsigned miner start -> process dead (s)':55} {behaviour_s:9.2f} "
        f"{'':9}  {len(found)} finding(s) {kills}"
    )


if __name__ == "__main__":
    main()

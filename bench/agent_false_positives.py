"""False positives: the benign set runs in kubelet-shaped pod cgroups under the real agent.

Workloads, each in its own pod cgroup, restarted until the run ends: gzip of a generated
file, a gcc build (make -j2 of generated C files, then the fresh binary run: a new file version
for the content scan each round), a numeric loop, a many-fork build (a shell
starting thousands of short processes), a container throttled at 0.5 cores running a busy
loop, and long-lived outbound connections with small periodic traffic to a loopback service.
The agent uses the embedded default policy, the proc connector and default sampling.

The last ``--oversubscribed`` fraction of the run (default: half) is an oversubscribed
phase: four more CPU-bound benign pods (a compression loop, a compile-like loop, a hashing
benchmark reading files, a numeric loop that only computes), each at a one-core limit, join
on this 2-core machine, so every busy pod is runnable far more than it runs, which is what
CPU demand measures.

Run as root: .venv/bin/python bench/agent_false_positives.py [--duration 600] [--oversubscribed 0.5]
Prints every detection as it happens and the totals per phase at the end (goal: 0).
"""

from __future__ import annotations

import argparse
import os
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minerguard import compiled_policy
from node_agent.records import Finding, PodRef
from node_agent.settings import AgentSettings
from node_agent.wiring import build_agent
from tests.integration.node_agent.conftest import NUMERIC, Pod
from tests.integration.node_agent.workloads import BENIGN

GZIP = (
    "head -c 8000000 /dev/urandom | base64 > {d}/data;"
    " while :; do gzip -6 -c {d}/data > /dev/null; done"
)
GCC = (
    "cd {d}; for i in $(seq 1 12); do"
    " printf 'int f%s(int x){{int s=0;for(int i=0;i<x;i++)s+=i*%s;return s;}}\\n' $i $i > f$i.c;"
    " done; printf 'int main(void){{return 0;}}\\n' > main.c;"
    " printf 'all: prog\\nprog: $(patsubst %%.c,%%.o,$(wildcard *.c))\\n\\tgcc -o $@ $^\\n"
    "%%.o: %%.c\\n\\tgcc -O2 -c $< -o $@\\n' > Makefile;"
    " while :; do make -s -j2 >/dev/null; ./prog; rm -f *.o prog; done"
)
FORKS = "while :; do for i in $(seq 1 500); do /bin/true; done; sleep 0.5; done"
CLIENT = r"""
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(4)]
while True:
    for s in socks:
        s.sendall(b'{"op":"heartbeat"}\n'); s.recv(64)
    time.sleep(5)
"""


class Echo(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _EchoHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class Printer:
    """Counts detections in the benign pods; others (anything else running here) are shown."""

    def __init__(self) -> None:
        self.found: list[Finding] = []
        self.names: dict[str, str] = {}
        self.phase = "normal"
        self.by_phase: dict[str, int] = {"normal": 0, "oversubscribed": 0}

    def emit(self, finding: Finding, pod: PodRef | None) -> None:
        who = self.names.get(finding.pod_uid or "")
        if who is None:
            print(f"ignored, not a benign pod of this run: {finding.summary}", flush=True)
            return
        self.found.append(finding)
        self.by_phase[self.phase] += 1
        print(f"DETECTION [{who}] ({self.phase}) {finding.summary}", flush=True)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root (cgroups, proc connector)")
    args = argparse.ArgumentParser()
    args.add_argument("--duration", type=float, default=600.0)
    args.add_argument(
        "--oversubscribed", type=float, default=0.5, help="fraction of the run oversubscribed"
    )
    opts = args.parse_args()
    echo = Echo(("127.0.0.1", 0), _EchoHandler)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    port = echo.server_address[1]
    settings = AgentSettings(
        no_cluster=True, include_host_processes=False, event_source="connector", status_interval=60
    )
    sink = Printer()
    agent = build_agent(settings, sink, policies=[compiled_policy.default_policy()])
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, kwargs={"duration": opts.duration, "stop": stop})
    pods: dict[str, Pod] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workloads: dict[str, list[str]] = {
            "gzip": ["sh", "-c", GZIP.format(d=tmp)],
            "gcc-build": ["sh", "-c", GCC.format(d=tmp + "/build")],
            "numeric": [sys.executable, "-c", NUMERIC, str(opts.duration + 60)],
            "many-fork": ["sh", "-c", FORKS],
            "throttled": [sys.executable, "-c", NUMERIC, str(opts.duration + 60)],
            "long-lived-conns": [sys.executable, "-c", CLIENT, str(port)],
        }
        Path(tmp, "build").mkdir()
        try:
            thread.start()
            time.sleep(1)
            for name, argv in workloads.items():
                pod = Pod()
                pods[name] = pod
                sink.names[pod.uid] = name
                if name == "throttled":
                    pod.set_quota(0.5)
                pod.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started = time.monotonic()
            print(f"running {list(workloads)} for {opts.duration:.0f} s", flush=True)
            thread.join(opts.duration * (1 - opts.oversubscribed))
            if thread.is_alive() and opts.oversubscribed > 0:
                sink.phase = "oversubscribed"
                for name, program in BENIGN.items():
                    pod = Pod()
                    pods[f"busy-{name}"] = pod
                    sink.names[pod.uid] = f"busy-{name}"
                    pod.set_quota(1.0)
                    pod.spawn(
                        [sys.executable, "-c", program, str(opts.duration + 60)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                print(f"oversubscribed phase: +{list(BENIGN)} at one core each", flush=True)
            thread.join()
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            thread.join(10)
            for pod in pods.values():
                pod.cleanup()
            echo.shutdown()
    counts = agent.counters.snapshot()
    print(
        f"benign workloads: {len(pods)}; ran {elapsed:.0f} s "
        f"(last {opts.oversubscribed:.0%} oversubscribed); "
        f"execs inspected: {counts.get('exec_inspected', 0)}; "
        f"detections: {len(sink.found)} (goal 0): {sink.by_phase}"
    )


if __name__ == "__main__":
    main()

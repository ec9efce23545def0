"""Network layer latency: lookup → report, connect → report, pool domain resolved → blocked.

A pod in a network namespace routed through this host resolves 20 distinct pool names
(``pN.supportxmr.com``), connects to each answer's address on a pool port, and (with a blocking
policy) keeps connecting to a fresh pool address on 443 until the node's table refuses it.
Lookup latency runs from the query sent (so it includes the stub resolver's answer time);
"report" is the finding queued for the agent loop (``observed_at``); the loop drains it on its
next wake-up (at most 0.5 s later, sooner when other events wake it).

Run as root: .venv/bin/python bench/network_latency.py [--rounds 20]   (about 30 s)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _network_lab

from node_agent.records import Finding
from tests.support import policy

SEE = r"""
import socket, struct, sys, time
dns, rounds, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def resolve(name):
    q = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0\0\1\0\1"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    s.sendto(q, (dns, 53)); data = s.recv(512); s.close()
    return socket.inet_ntoa(data[-4:])
for i in range(first, first + rounds):
    t = time.time()
    address = resolve(f"p{i}.supportxmr.com")
    print("lookup", i, address, t, flush=True)
    time.sleep(0.2)
    t = time.time()
    try:
        socket.create_connection((address, 3333), timeout=2).close()
    except OSError:
        pass
    print("connect", i, address, t, flush=True)
    time.sleep(0.2)
"""

BLOCK = r"""
import socket, struct, sys, time
dns, rounds, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def resolve(name):
    q = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0\0\1\0\1"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    s.sendto(q, (dns, 53)); data = s.recv(512); s.close()
    return socket.inet_ntoa(data[-4:])
for i in range(first, first + rounds):
    address = resolve(f"p{i}.supportxmr.com")
    t0 = time.time()
    while time.time() - t0 < 3:
        try:
            socket.create_connection((address, 443), timeout=1).close()
        except OSError:
            print("blocked", i, address, time.time() - t0, flush=True)
            break
    else:
        print("never", i, address, 3.0, flush=True)
    time.sleep(0.1)
"""


def run_in_pod(pod: _network_lab.LabPod, script: str, *args: str) -> list[list[str]]:
    """Run ``script`` inside the pod; its output lines, split."""
    proc = pod.spawn([sys.executable, "-c", script, *args], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=120)
    return [line.split() for line in out.decode().splitlines()]


def summary(name: str, values: list[float], goal: str) -> str:
    """One table row in milliseconds."""
    if not values:
        return f"| {name} | n=0 | | | | {goal} |"
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return (
        f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p95:.1f} | {ms[-1]:.1f} | {goal} |"
    )


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    rows: list[str] = []
    with _network_lab.lab(1) as built:
        pod = built.pods[0]
        see = policy("see", mode="Enforce")
        layer, _counters = _network_lab.layer(built, [see], block=False)
        try:
            time.sleep(0.5)
            lines = run_in_pod(pod, SEE, built.dns_ip, str(rounds), "0")
            time.sleep(0.5)
            findings: list[Finding] = layer.drain()
        finally:
            layer.close()
        lookups, connects = [], []
        for kind, _i, address, when in lines:
            for finding in findings:
                if kind == "lookup" and any(address in lk for lk in finding.lookups):
                    lookups.append(finding.observed_at - float(when))
                    break
                if (
                    kind == "connect"
                    and finding.connections
                    and finding.connections[0].remote_address == address
                ):
                    connects.append(finding.observed_at - float(when))
                    break
        rows.append(summary("lookup → report", lookups, "< 1 s"))
        rows.append(summary("connect → report", connects, "< 1 s"))
        block = policy(
            "block",
            mode="Enforce",
            network={"blockPoolTraffic": True, "enforcement": "Node"},
            rateLimit={"maxActions": 1000, "windowSeconds": 60},
        )
        layer, _counters = _network_lab.layer(built, [block], block=True)
        try:
            time.sleep(1.0)
            lines = run_in_pod(pod, BLOCK, built.dns_ip, str(rounds), "100")
        finally:
            layer.close()
        blocked = [float(line[3]) for line in lines if line[0] == "blocked"]
        never = sum(1 for line in lines if line[0] == "never")
        rows.append(summary("pool answer → connect refused", blocked, "< 100 ms"))
        if never:
            rows.append(f"| never blocked within 3 s | {never} | | | | |")
    print(f"network layer latency, {rounds} rounds, 1 pod (2 shared cores)")
    print("| path | n | median ms | p95 ms | max ms | goal |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

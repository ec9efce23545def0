"""Network layer cost: CPU of its thread and the agent's RSS, idle and under load.

Load, generated from real namespaces routed through this host (2 shared cores, so the
generators compete with the layer for CPU): benign DNS answers sent from port 53 towards a
pod (each goes through the packet socket's filter, is copied, decoded and matched), and new
UDP flows opened by the pod, each a conntrack NEW event the layer decodes and matches. The
table is installed (so conntrack runs) and a blocking policy covers the pod. Rates are what
the generators achieved ("generated"); "read" is what reached the layer in user space (new flows
are filtered in the kernel: only those to a pool port or a learned pool address are handed
over). The last phase sends every flow to a pool port, so each one reaches user space.

Run as root: .venv/bin/python bench/network_cost.py [--seconds 5] [--dns 5000] [--flows 10000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _network_lab

from tests.support import policy

TICK = os.sysconf("SC_CLK_TCK")

ANSWERS = r"""
import socket, struct, sys, time
src, dst, rate, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
name = b"\x03www\x07example\x03com\x00"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((src, 53))
sent, start = 0, time.monotonic()
while (now := time.monotonic()) - start < seconds:
    due = int((now - start) * rate)
    while sent < due:
        head = struct.pack("!HHHHHH", sent & 0xFFFF, 0x8180, 1, 1, 0, 0)
        body = name + b"\0\1\0\1\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4)
        body += bytes([198, 18, 0, 1])
        s.sendto(head + body, (dst, 9)); sent += 1
    time.sleep(0.002)
print(sent / seconds, flush=True)
"""

FLOWS = r"""
import socket, sys, time
dst, rate, seconds, port = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
sent, start = 0, time.monotonic()
while (now := time.monotonic()) - start < seconds:
    due = int((now - start) * rate)
    while sent < due:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", (dst, port or 9000 + sent % 20000)); s.close(); sent += 1
    time.sleep(0.002)
print(sent / seconds, flush=True)
"""


def thread_cpu(native_id: int) -> float:
    """CPU seconds (user + system) of one thread of this process."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib() -> float:
    """This process's resident memory now, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--dns", type=int, default=5000)
    parser.add_argument("--flows", type=int, default=10000)
    args = parser.parse_args()
    rows: list[str] = []
    with _network_lab.lab(1) as built:
        pod = built.pods[0]
        block = policy(
            "block", mode="Enforce", network={"blockPoolTraffic": True, "enforcement": "Node"}
        )
        rss_before = rss_mib()
        layer, counters = _network_lab.layer(built, [block], block=True)
        thread = layer._thread
        assert thread is not None
        assert thread.native_id is not None
        tid = thread.native_id
        time.sleep(1.0)

        in_inet = ["ip", "netns", "exec", built.inet_ns, sys.executable, "-c"]

        def phase(name: str, dns_rate: int, flow_rate: int, port: int = 0) -> None:
            before_cpu, before = thread_cpu(tid), counters.snapshot()
            started = time.monotonic()
            procs = []
            if dns_rate:
                procs.append(
                    subprocess.Popen(
                        [
                            *in_inet,
                            ANSWERS,
                            built.benign_ip,
                            pod.address,
                            str(dns_rate),
                            str(args.seconds),
                        ],
                        stdout=subprocess.PIPE,
                    )
                )
            if flow_rate:
                procs.append(
                    pod.spawn(
                        [
                            sys.executable,
                            "-c",
                            FLOWS,
                            built.benign_ip,
                            str(flow_rate),
                            str(args.seconds),
                            str(port),
                        ],
                        stdout=subprocess.PIPE,
                    )
                )
            if not procs:
                time.sleep(args.seconds)
            made = [
                float(proc.communicate(timeout=args.seconds * 4 + 30)[0] or 0) for proc in procs
            ]
            generated = " + ".join(f"{rate:,.0f}/s" for rate in made) or "-"
            time.sleep(0.5)  # let the layer finish what is queued
            wall = time.monotonic() - started
            cpu = thread_cpu(tid) - before_cpu
            after = counters.snapshot()
            answers = after.get("network_dns_answers", 0) - before.get("network_dns_answers", 0)
            flows = after.get("network_pod_flows", 0) - before.get("network_pod_flows", 0)
            rows.append(
                f"| {name} | {generated} | {answers / args.seconds:,.0f} |"
                f" {flows / args.seconds:,.0f} |"
                f" {cpu:.2f} s / {wall:.1f} s | {100 * cpu / wall:.1f}% |"
                f" {rss_mib() - rss_before:+.1f} MiB |"
            )

        try:
            phase("idle", 0, 0)
            phase(f"{args.dns:,} DNS answers/s", args.dns, 0)
            phase(f"{args.flows:,} new flows/s", 0, args.flows)
            phase("both", args.dns, args.flows)
            phase(f"{args.flows:,} new flows/s to a pool port (worst case)", 0, args.flows, 3333)
            drops = (
                counters.get("network_packets_dropped"),
                counters.get("network_flow_overruns"),
            )
        finally:
            layer.close()
    print(f"network layer cost, {args.seconds:g} s per phase, 1 pod, 2 shared cores")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(peak RSS of the whole bench process: {peak:.0f} MiB)")
    print(
        "| load | generated | DNS answers/s read | pod flows/s read | layer thread CPU"
        " | of a core | RSS vs before the layer |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"kernel drops: packets {drops[0]}, conntrack overruns {drops[1]}")


if __name__ == "__main__":
    main()

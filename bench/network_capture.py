"""Where to capture pods' DNS answers: one host socket, or one socket per pod namespace.

Both variants run the same classic BPF filter and receive the same answers (5,000/s spread
over the pods, sent from port 53 in an "internet" namespace and routed by this host). The host
variant is one ``AF_PACKET`` socket on every interface; the per-pod variant opens a socket
inside each pod's namespace (``setns`` in a helper thread) and waits on all of them. Printed:
the reader's CPU per answer and per second, the cost of opening the sockets, and what each
variant needs to stay current (the per-pod one must open a socket for every new pod, and
misses a pod's answers until it does).

Run as root: .venv/bin/python bench/network_capture.py [--pods 20] [--rate 5000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _network_lab

from node_agent.kernel import dns_capture
from node_agent.kernel.dns_capture import PacketCapture

CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)

SENDER = r"""
import socket, struct, sys, time
src, rate, seconds, targets = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
name = b"\x03www\x07example\x03com\x00"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((src, 53))
sent, start = 0, time.monotonic()
while (now := time.monotonic()) - start < seconds:
    while sent < int((now - start) * rate):
        head = struct.pack("!HHHHHH", sent & 0xFFFF, 0x8180, 1, 1, 0, 0)
        body = name + b"\0\1\0\1\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + b"\xc6\x12\0\1"
        s.sendto(head + body, (targets[sent % len(targets)], 9)); sent += 1
    time.sleep(0.002)
print(sent, flush=True)
"""


def open_in(netns: str) -> PacketCapture:
    """A capture socket created inside ``netns`` (a thread enters it; sockets keep theirs)."""
    found: list[PacketCapture] = []

    def enter() -> None:
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if LIBC.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            # inside the pod the answer arrives (PACKET_HOST), it is not sent
            program = dns_capture.dns_filter(pkttype=dns_capture.PACKET_HOST)
            found.append(PacketCapture(program))
        finally:
            os.close(fd)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    return found[0]


def thread_cpu() -> float:
    """CPU seconds of the calling thread."""
    return time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)


def read_all(captures: list[PacketCapture], seconds: float) -> tuple[int, float]:
    """Read every capture until ``seconds`` pass; (packets, CPU seconds of this thread)."""
    count = 0
    start, deadline = thread_cpu(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select(captures, [], [], 0.2)
        for capture in ready:
            count += len(capture.read(256))
    return count, thread_cpu() - start


def main() -> None:
    """Measure both variants and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rows = []
    with _network_lab.lab(args.pods) as built:
        targets = [pod.address for pod in built.pods]
        sender = ["ip", "netns", "exec", built.inet_ns, sys.executable, "-c", SENDER]

        def measure(name: str, captures: list[PacketCapture], opened: float) -> None:
            load = subprocess.Popen(
                [*sender, built.benign_ip, str(args.rate), str(args.seconds), *targets],
                stdout=subprocess.PIPE,
            )
            packets, cpu = read_all(captures, args.seconds + 0.5)
            load.communicate(timeout=60)
            per = cpu / packets * 1e6 if packets else 0.0
            rate = packets / args.seconds
            share = 100 * cpu / (args.seconds + 0.5)
            rows.append(
                f"| {name} | {len(captures)} | {opened * 1000:.1f} ms | {rate:,.0f}"
                f" | {per:.1f} µs | {share:.1f}% |"
            )
            for capture in captures:
                capture.close()

        started = time.perf_counter()
        host = [PacketCapture(dns_capture.dns_filter())]
        measure("one host socket, all interfaces", host, time.perf_counter() - started)
        started = time.perf_counter()
        per_pod = [open_in(pod.netns) for pod in built.pods]
        measure("one socket per pod namespace", per_pod, time.perf_counter() - started)
    print(f"DNS answer capture, {args.pods} pods, {args.rate:,} answers/s, 2 shared cores")
    print("| variant | sockets | time to open | answers/s read | CPU per answer | of a core |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""A webhook replica under slow, large and expensive clients: its RSS, and an honest review.

Run: PYTHONPATH=. .venv/bin/python bench/webhook_slow_clients.py [--clients 12] [--seconds 8]
     [--body-mib 16] [--root DIR]   (DIR: another checkout, e.g. the code before a change)

Starts ``python -m webhook`` from ``--root`` over TLS on 127.0.0.1 (one worker, the embedded
default policy) and, in two phases, measures what a pod on the cluster network can do to it:

1. slow bodies: ``--clients`` connections (at most 64) each declare a ``--body-mib`` body
   (default 16, the issue's attack; 6 stays under the cap), send all but 1 MiB at once,
   then one byte every 0.2 s for up to ``--seconds`` (at most 30), while an honest review
   (a small miner pod) is posted every 0.25 s. Reported: RSS before and at its peak, how
   many slow clients were cut off and after how long, and the honest reviews' latencies
   and statuses.
2. expensive bodies: four reviews of a legal pod whose ``sh -c`` script is ~1 MiB of words,
   posted at once, and an honest review 50 ms later. Reported: each one's latency.

Loopback only; everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

from tests.integration.webhook import certs, oci
from tests.integration.webhook.reviews import container, pod, review

MIB = 1 << 20
POOL = "stratum+tcp://pool.supportxmr.com:3333"
HONEST = orjson.dumps(review(pod(container("alpine", command=["xmrig", "-o", POOL]))))


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Slow(threading.Thread):
    def __init__(self, port: int, ca: ssl.SSLContext, seconds: float, size: int) -> None:
        super().__init__(daemon=True)
        self.port, self.ca, self.seconds, self.size = port, ca, seconds, size
        self.cut_after: float | None = None
        self.status = "open"

    def run(self) -> None:
        began = time.monotonic()
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.seconds + 10)
        with self.ca.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            head = (
                "POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json"
                f"\r\nContent-Length: {self.size}\r\n\r\n"
            ).encode()
            try:
                sock.sendall(head + b"{" + b" " * (self.size - MIB - 1))
                while time.monotonic() - began < self.seconds:
                    readable, _, _ = select.select([sock], [], [], 0.2)
                    if readable or sock.pending():
                        break
                    sock.sendall(b" ")
                line = sock.recv(64).split(b"\r\n", 1)[0]
                self.status = line.split(b" ")[1].decode() if line else "closed"
            except OSError:
                self.status = "reset"
            if time.monotonic() - began < self.seconds:
                self.cut_after = time.monotonic() - began


def slow_phase(
    pid: int, port: int, ca: ssl.SSLContext, *, clients: int, seconds: float, size: int
) -> None:
    url = f"https://127.0.0.1:{port}"
    with httpx.Client(base_url=url, verify=ca, timeout=30) as client:
        client.post("/validate", content=HONEST)
        baseline = peak = rss(pid)
        attackers = [Slow(port, ca, seconds, size) for _ in range(clients)]
        for attacker in attackers:
            attacker.start()
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            began = time.monotonic()
            try:
                code = client.post("/validate", content=HONEST).status_code
            except httpx.HTTPError:
                code = 0
            latencies.append(time.monotonic() - began)
            statuses[code] = statuses.get(code, 0) + 1
            peak = max(peak, rss(pid))
            time.sleep(0.25)
        for attacker in attackers:
            attacker.join(seconds + 15)
        peak = max(peak, rss(pid))
    cut = [a.cut_after for a in attackers if a.cut_after is not None]
    outcome: dict[str, int] = {}
    for attacker in attackers:
        outcome[attacker.status] = outcome.get(attacker.status, 0) + 1
    mib = size // MIB
    print(f"slow bodies: {clients} clients x {mib} MiB declared, {mib - 1} MiB sent, then 5 B/s")
    print(f"  RSS {baseline / MIB:.0f} MiB before, {peak / MIB:.0f} MiB at peak")
    if cut:
        print(f"  cut off: {len(cut)}/{clients}, after {min(cut):.1f}-{max(cut):.1f} s {outcome}")
    else:
        print(f"  cut off: 0/{clients} within {seconds:g} s {outcome}")
    print(
        f"  honest reviews: {len(latencies)}, statuses {statuses}, latency p50 "
        f"{statistics.median(latencies) * 1e3:.0f} ms, max {max(latencies) * 1e3:.0f} ms"
    )


def expensive_phase(port: int, ca: ssl.SSLContext) -> None:
    heavy = orjson.dumps(
        review(pod(container("busybox", command=["sh", "-c", "true " * 200_000 + "; sleep 1"])))
    )

    async def timed(client: httpx.AsyncClient, body: bytes) -> float:
        began = time.monotonic()
        (await client.post("/validate", content=body)).raise_for_status()
        return time.monotonic() - began

    async def run() -> tuple[float, float, list[float], float]:
        url = f"https://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, verify=ca, timeout=60) as client:
            await timed(client, HONEST)
            alone_honest = min([await timed(client, HONEST) for _ in range(5)])
            alone_heavy = await timed(client, heavy)
            flood = [asyncio.create_task(timed(client, heavy)) for _ in range(4)]
            await asyncio.sleep(0.05)
            honest = await timed(client, HONEST)
            return alone_honest, alone_heavy, list(await asyncio.gather(*flood)), honest

    alone_honest, alone_heavy, heavies, honest = asyncio.run(run())
    shown = ", ".join(f"{h * 1e3:.0f}" for h in sorted(heavies))
    print(f"expensive bodies: 4 reviews of a {len(heavy) / MIB:.1f} MiB sh -c script at once")
    print(f"  alone: honest {alone_honest * 1e3:.0f} ms, heavy {alone_heavy * 1e3:.0f} ms")
    print(f"  together: heavy {shown} ms; honest sent 50 ms later {honest * 1e3:.0f} ms")


def main() -> int:
    cli = argparse.ArgumentParser()
    cli.add_argument("--clients", type=int, default=12)
    cli.add_argument("--seconds", type=float, default=8.0)
    cli.add_argument("--body-mib", type=int, default=16)
    cli.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = cli.parse_args()
    clients, seconds = min(max(args.clients, 1), 64), min(max(args.seconds, 1.0), 30.0)
    folder = Path(tempfile.mkdtemp(prefix="mg-slow-"))
    authority = certs.authority()
    cert, key = folder / "tls.crt", folder / "tls.key"
    certs.serving(authority, cert, key)
    ca = ssl.create_default_context(cadata=authority.pem.decode())
    port = oci.free_port()
    command = [sys.executable, "-m", "webhook", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--tls-cert", str(cert), "--tls-key", str(key), "--log-level", "error"]
    process = subprocess.Popen(
        command,
        cwd=args.root,
        env={**os.environ, "PYTHONPATH": str(args.root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"https://127.0.0.1:{port}/readyz", verify=ca, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    print("the webhook did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        print(f"webhook from {args.root}")
        size = min(max(args.body_mib, 2), 32) * MIB
        slow_phase(process.pid, port, ca, clients=clients, seconds=seconds, size=size)
        expensive_phase(port, ca)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""/validate over HTTPS: minerguard vs the bare FastAPI/uvicorn floor, side by side.

Run: PYTHONPATH=. .venv/bin/python bench/webhook_throughput.py [--seconds 8] [--workers 1 2]

Needs ``wrk`` (Debian package ``wrk``) and ``docker-registry``. For each worker count both
servers run on loopback with the same certificate (TLS 1.3), the same uvicorn (uvloop and
httptools when installed) and the same number of worker processes. The load generator is
wrk (C, one thread, keep-alive, a Lua script cycling through ten AdmissionReviews: eight
benign Deployment pods whose app image entrypoint comes from a loopback registry, warm in the
cache, one Deployment and one miner pod that is denied). Measured: requests/s at 50
connections, and p50/p99 at one connection (service time). wrk shares the machine's cores
with the servers, as any load generator here must; it uses one of them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import webhook_workload

from tests.integration.webhook import certs, oci

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def lua_script(bodies: list[bytes], path: Path) -> Path:
    parts = ["local bodies = {}"]
    for index, body in enumerate(bodies, 1):
        parts.append(f"bodies[{index}] = [==[{body.decode()}]==]")
    parts.append(
        "local i = 0\n"
        'local headers = {["Content-Type"] = "application/json"}\n'
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        '  return wrk.format("POST", "/validate", headers, bodies[i])\n'
        "end\n"
    )
    path.write_text("\n".join(parts))
    return path


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(session: int) -> float:
    """User+system CPU of every live process in a session (the server and its workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


@contextmanager
def serve(command: list[str], url: str, ca: ssl.SSLContext) -> Iterator[int]:
    # The bench's registry is on loopback, which the webhook's address policy denies by default.
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MINERGUARD_WEBHOOK_REGISTRY_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    }
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/docs", verify=ca, timeout=1).status_code < 600:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"server did not start: {command}") from None
                time.sleep(0.1)
        yield process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def warm(url: str, bodies: list[bytes], ca: ssl.SSLContext, rounds: int) -> None:
    """Every body through every worker (connections spread over the workers)."""
    for _ in range(rounds):
        with httpx.Client(verify=ca, base_url=url) as client:
            for body in bodies:
                answer = client.post(
                    "/validate", content=body, headers={"Content-Type": "application/json"}
                )
                assert answer.status_code == 200, answer.text


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, script: Path, connections: int, seconds: int, session: int) -> dict[str, float]:
    cpu = cpu_seconds(session)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url + "/validate",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = cpu_seconds(session) - cpu
    found: dict[str, float] = {}
    total = re.search(r"(\d+) requests in", out)
    found["cpu_us"] = cpu / int(total.group(1)) * 1e6 if total else float("nan")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    found["rps"] = float(rps.group(1)) if rps else 0.0
    for pct in ("50", "99"):
        hit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        found[f"p{pct}"] = float(hit.group(1)) * UNITS[hit.group(2)] if hit else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        print(f"  wrk reported problems: {bad and bad.group(0)} {errors and errors.group(0)}")
    return found


def main() -> int:
    cli = argparse.ArgumentParser()
    cli.add_argument("--seconds", type=int, default=8)
    cli.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = cli.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="mg-bench-"))
    authority = certs.authority()
    cert, key = folder / "tls.crt", folder / "tls.key"
    certs.serving(authority, cert, key)
    ca = ssl.create_default_context(cadata=authority.pem.decode())
    storage = folder / "storage"
    storage.mkdir()
    rows = []
    with oci.Registry(storage, folder) as registry:
        webhook_workload.push_images(registry.url)
        bodies = webhook_workload.bodies(registry.host)
        script = lua_script(bodies, folder / "bodies.lua")
        print(f"{len(bodies)} bodies, {sum(map(len, bodies)) // len(bodies)} bytes on average")
        for workers in args.workers:
            floor_port, ours_port = oci.free_port(), oci.free_port()
            servers = {
                "floor (FastAPI, allow)": [
                    PY,
                    "-m",
                    "uvicorn",
                    "webhook_floor:app",
                    "--app-dir",
                    "bench",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(floor_port),
                    "--ssl-certfile",
                    str(cert),
                    "--ssl-keyfile",
                    str(key),
                    "--workers",
                    str(workers),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                "minerguard": [
                    PY,
                    "-m",
                    "webhook",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ours_port),
                    "--tls-cert",
                    str(cert),
                    "--tls-key",
                    str(key),
                    "--insecure-registry",
                    registry.host,
                    "--workers",
                    str(workers),
                    "--log-level",
                    "error",
                ],
            }
            ports = {"floor (FastAPI, allow)": floor_port, "minerguard": ours_port}
            for name, command in servers.items():
                url = f"https://127.0.0.1:{ports[name]}"
                with serve(command, url, ca) as session:
                    warm(url, bodies, ca, rounds=10 * workers)
                    one = wrk(url, script, 1, args.seconds, session)
                    many = wrk(url, script, 50, args.seconds, session)
                rows.append((workers, name, many["rps"], many["cpu_us"], one["p50"], one["p99"]))
    print()
    print(
        f"{'workers':>7}  {'server':<24} {'req/s @50':>10} {'CPU us/req':>11}"
        f" {'p50 @1 (ms)':>12} {'p99 @1 (ms)':>12}"
    )
    for workers, name, rps, cpu, p50, p99 in rows:
        print(f"{workers:>7}  {name:<24} {rps:>10.0f} {cpu:>11.0f} {p50:>12.2f} {p99:>12.2f}")
    print()
    for workers in args.workers:
        by = {name: rps for w, name, rps, _, _, _ in rows if w == workers}
        ratio = by["minerguard"] / by["floor (FastAPI, allow)"]
        print(f"workers={workers}: throughput ratio minerguard/floor = {ratio:.2f}")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

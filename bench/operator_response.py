"""Operator response time and throughput: MinerDetection created -> pod deleted + owner stopped.

Run: .venv/bin/python bench/operator_response.py [--detections 100] [--burst 300]

The real operator (minerguard_operator on kopf, the real ``kubernetes`` client) runs against the
kmock API emulator on loopback, as in tests/integration/operator. Each detection targets its own
Deployment -> ReplicaSet -> Pod chain under a policy with actions Alert, StopOwner, DeletePod.

1. Latency: detections are created one at a time, 20 ms apart; for each, the time until its
   pod is gone AND its Deployment is at 0 replicas is measured
   (timestamps taken inside the emulator when it serves the DELETE and the PATCH to 0).
   p50/p99/max over ``--detections``.
2. Throughput: detections are offered at fixed rates for 4 s each; the sustained rate is the
   highest one at which the backlog (created but not yet settled) stays bounded, i.e. the
   p99 latency of that step stays under 1 s. A final burst of ``--burst`` detections created as
   fast as the client can gives the drain rate.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kmock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.operator.harness import Cluster, OperatorThread, settings_for
from tests.kube_emulator import EmulatorThread

POLICY: dict[str, Any] = {
    "actions": {"runtime": ["Alert", "StopOwner", "DeletePod"]},
    "rateLimit": {"maxActions": 100000},
}


class Watch:
    """Timestamps, inside the emulator, when each pod is deleted and each Deployment zeroed."""

    def __init__(self, kube: EmulatorThread) -> None:
        self.deleted: dict[str, float] = {}
        self.zeroed: dict[str, float] = {}
        self.done: dict[str, float] = {}
        handle = kube.emu._handle

        async def spy(request: Any) -> Any:
            response = await handle(request)
            now = time.perf_counter()
            plural, name = getattr(request.resource, "plural", None), request.name
            if request.action == kmock.action.DELETE and plural == "pods" and name:
                self.deleted[name.removesuffix("-rs-pod")] = now
            replicas = ((request.data or {}).get("spec") or {}).get("replicas")
            if request.action == kmock.action.UPDATE and plural == "deployments" and replicas == 0:
                self.zeroed[name] = now
            for app in {name.removesuffix("-rs-pod")} if name else ():
                if app in self.deleted and app in self.zeroed:
                    self.done.setdefault(app, max(self.deleted[app], self.zeroed[app]))
            return response

        kube.emu._handle = spy  # type: ignore[method-assign]
        self.stop = threading.Event()


def scene(cluster: Cluster, names: list[str]) -> None:
    for name in names:
        deployment = cluster.deployment(name, replicas=2)
        replica_set = cluster.replica_set(f"{name}-rs", deployment)
        cluster.pod(f"{name}-rs-pod", owner=replica_set, labels={"app": name})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait(watch: Watch, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(n not in watch.done for n in names) and time.monotonic() < deadline:
        time.sleep(0.01)


def latency(cluster: Cluster, watch: Watch, count: int) -> list[float]:
    names = [f"lat-{i}" for i in range(count)]
    scene(cluster, names)
    created: dict[str, float] = {}
    for name in names:
        created[name] = time.perf_counter()
        cluster.detection(f"d-{name}", f"{name}-rs-pod")
        time.sleep(0.02)
    wait(watch, names, 30)
    return [watch.done[n] - created[n] for n in names if n in watch.done]


def offered(
    cluster: Cluster, watch: Watch, rate: float, seconds: float, tag: str
) -> tuple[int, float, float]:
    count = int(rate * seconds)
    names = [f"{tag}-{i}" for i in range(count)]
    scene(cluster, names)
    created: dict[str, float] = {}
    start = time.perf_counter()
    for index, name in enumerate(names):
        pause = start + index / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        created[name] = time.perf_counter()
        cluster.detection(f"d-{name}", f"{name}-rs-pod")
    achieved = count / (time.perf_counter() - start)
    wait(watch, names, 60)
    times = [watch.done[n] - created[n] for n in names if n in watch.done]
    return len(times), achieved, percentile(times, 0.99) if times else float("inf")


@contextmanager
def stack() -> Iterator[tuple[Cluster, Watch]]:
    """A fresh emulator (kmock slows with every stored object) and operator."""
    with EmulatorThread() as kube:
        cluster = Cluster(kube.url)
        cluster.policy(**POLICY)
        watch = Watch(kube)
        operator = OperatorThread(settings_for(kube.url, housekeeping_seconds=30)).start()
        try:
            yield cluster, watch
        finally:
            operator.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--rates", default="5,10,20,40")
    args = parser.parse_args()
    logging.getLogger("kopf").setLevel(logging.ERROR)  # kmock's event-name clashes are noise
    with stack() as (cluster, watch):
        times = latency(cluster, watch, args.detections)
    print(
        "\nLatency, detection created -> pod deleted and Deployment at 0 "
        f"({len(times)}/{args.detections} done)"
    )
    print("| p50 | p99 | max | mean |")
    print("|---|---|---|---|")
    print(
        f"| {percentile(times, 0.5) * 1000:.0f} ms | {percentile(times, 0.99) * 1000:.0f} ms "
        f"| {max(times) * 1000:.0f} ms | {statistics.mean(times) * 1000:.0f} ms |"
    )
    print("\nOffered load (4 s per step, fresh emulator and operator each)")
    print("| offered/s | achieved/s | done | p99 |")
    print("|---|---|---|---|")
    for step, rate in enumerate(float(r) for r in args.rates.split(",")):
        with stack() as (cluster, watch):
            done, achieved, p99 = offered(cluster, watch, rate, 4.0, f"r{step}")
        print(f"| {rate:.0f} | {achieved:.1f} | {done}/{int(rate * 4)} | {p99 * 1000:.0f} ms |")
    with stack() as (cluster, watch):
        names = [f"burst-{i}" for i in range(args.burst)]
        scene(cluster, names)
        start = time.perf_counter()
        for name in names:
            cluster.detection(f"d-{name}", f"{name}-rs-pod")
        created_in = time.perf_counter() - start
        wait(watch, names, 120)
        finished = [watch.done[n] for n in names if n in watch.done]
        drained = max(finished) - start
    print(
        f"\nBurst of {args.burst}: created in {created_in:.2f} s, "
        f"all handled after {drained:.2f} s "
        f"({len(finished)} done) -> {len(finished) / drained:.0f} detections/s drained"
    )


if __name__ == "__main__":
    main()

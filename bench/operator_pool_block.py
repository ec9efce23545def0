"""Cluster-wide pool blocking: policy change -> CNI object updated, and the cost of rendering.

Run: .venv/bin/python bench/operator_pool_block.py [--changes 30]

1. Latency: the real operator (kopf, the real ``kubernetes`` client) runs against the kmock API
   emulator on loopback serving AdminNetworkPolicy (the project's published CRD). A MinerPolicy
   with ``blockPoolTraffic`` gets a new pool port ``--changes`` times, one at a time; each time
   the wall time from the PATCH of the policy until the AdminNetworkPolicy in the emulator holds
   the new port is measured (polled every 2 ms). p50/p99/max.
2. Render cost: rendering one policy with the built-in bundle for each engine, in microseconds
   (mean of 2,000 runs), which housekeeping repeats per policy every round.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minerguard.api.policy import MinerPolicySpec, NetworkEnforcement
from minerguard.signatures import bundle
from minerguard_operator.decide import network as net
from minerguard_operator.decide import pool_targets
from tests.integration.operator.harness import Cluster, OperatorThread, settings_for
from tests.kube_emulator import EmulatorThread

ROOT = Path(__file__).resolve().parents[1]
ANP = "policy.networking.k8s.io/v1alpha1/adminnetworkpolicies"


def _ports(kube: EmulatorThread, name: str) -> set[int]:
    for obj in kube.objects(ANP):
        if (obj.get("metadata") or {}).get("name") == name:
            return {p["portNumber"]["port"] for r in obj["spec"]["egress"] for p in r["ports"]}
    return set()


def latency(changes: int) -> list[float]:
    crd = yaml.safe_load((ROOT / "tests/data/schemas/anp-standard.yaml").read_text())
    name = net.object_name("bench")
    spent: list[float] = []
    with EmulatorThread() as kube:
        kube.emu.register_crd(crd)
        cluster = Cluster(kube.url)
        operator = OperatorThread(settings_for(kube.url, housekeeping_seconds=30)).start()
        try:
            ports = [30000]
            spec: dict[str, Any] = {
                "builtinSignatures": True,
                "signatures": {"poolPorts": ports},
                "network": {"blockPoolTraffic": True},
            }
            cluster.policy("bench", **spec)
            deadline = time.monotonic() + 10
            while 30000 not in _ports(kube, name) and time.monotonic() < deadline:
                time.sleep(0.01)
            for step in range(1, changes + 1):
                ports = [*ports, 30000 + step]
                started = time.perf_counter()
                cluster.custom.patch_cluster_custom_object(
                    "minerguard.io",
                    "v1alpha1",
                    "minerpolicies",
                    "bench",
                    {"spec": {"signatures": {"poolPorts": ports}}},
                )
                deadline = time.monotonic() + 10
                while ports[-1] not in _ports(kube, name):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"change {step} not applied within 10 s")
                    time.sleep(0.002)
                spent.append(time.perf_counter() - started)
        finally:
            operator.stop()
            cluster.api.close()
    return spent


def render_cost(runs: int = 2000) -> dict[str, float]:
    spec = MinerPolicySpec.model_validate(
        {
            "network": {"blockPoolTraffic": True},
            "exemptions": {"podLabels": {"matchLabels": {"a": "b"}}},
        }
    )
    loaded = bundle.builtin()
    found = {}
    for mechanism in (
        NetworkEnforcement.ADMIN_NETWORK_POLICY,
        NetworkEnforcement.CILIUM,
        NetworkEnforcement.CALICO,
    ):
        started = time.perf_counter()
        for _ in range(runs):
            goal = pool_targets.targets(spec, loaded)
            net.render(mechanism, "bench", "uid", spec, goal, blocking=True)
        found[mechanism.value] = (time.perf_counter() - started) / runs * 1e6
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    spent = sorted(latency(args.changes))
    p99 = spent[min(len(spent) - 1, round(0.99 * (len(spent) - 1)))]
    print(f"policy change -> AdminNetworkPolicy updated ({len(spent)} changes, emulated API)")
    print("| p50 | p99 | max |")
    print("| --- | --- | --- |")
    print(
        f"| {statistics.median(spent) * 1000:.0f} ms | {p99 * 1000:.0f} ms"
        f" | {spent[-1] * 1000:.0f} ms |"
    )
    print()
    print("render one policy with the built-in bundle (targets + objects), mean of 2,000")
    print("| engine | µs |")
    print("| --- | --- |")
    for engine, micros in render_cost().items():
        print(f"| {engine} | {micros:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

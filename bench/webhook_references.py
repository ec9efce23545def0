"""ConfigMaps and Secrets a pod reads: what refusing them at their own admission would cost, and
what reading them costs a review.

Run: PYTHONPATH=. .venv/bin/python bench/webhook_references.py [--configmaps 10000]

1. *Refuse ConfigMaps/Secrets at their own admission?* Every ConfigMap and Secret document
   of the corpus (``tests/data/corpus``, held-out part included) is judged alone, two ways:
   its values as free text by the engine (what a pod's named file gets), and by the conclusive
   shape alone (an xmrig-style JSON config, signal ``miner-json-config``). Printed: how many
   benign and malicious objects each would refuse.
2. *Reading them for a review:* one ConfigMap through :class:`webhook.referenced.ObjectReader`
   against kmock's emulator on loopback, from the watch's memory and by GET (a miss, or
   ``configMapCacheMiB: 0``); median and p99 per read.
3. *The watch's memory:* N ConfigMaps shaped like ``kube-root-ca.crt`` (one in every
   namespace, ~1.3 KB) folded into :class:`webhook.referenced.ConfigMapWatch`, measured with
   tracemalloc; and the pure resolver's cost per pod (10 env references and one named file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import tracemalloc
from typing import Any

import httpx

from minerguard import podspec, references
from minerguard.compiled_policy import default_policy
from minerguard.kube import client
from minerguard.signatures.engine import Subject
from tests import corpus
from tests.kube_emulator import EmulatorThread
from webhook import referenced


def admission_table() -> None:
    policy = default_policy()
    counts = {(side, way): 0 for side in ("benign", "malicious") for way in ("text", "shape")}
    totals = {"benign": 0, "malicious": 0}
    flagged: list[str] = []
    for case in corpus.cases():
        side = "malicious" if case.malicious else "benign"
        for doc in case.documents:
            data = references.object_data(doc)
            if not data:
                continue
            totals[side] += 1
            verdict = policy.engine.evaluate(Subject(argv=(), texts=tuple(data.values())))
            if verdict.matched:
                counts[(side, "text")] += 1
                if side == "benign":
                    flagged.append(case.name)
            if any(s.name == "miner-json-config" for s in verdict.signals):
                counts[(side, "shape")] += 1
    print("ConfigMaps/Secrets of the corpus judged at their own admission")
    print(f"{'way':<40} {'benign refused':>16} {'malicious refused':>18}")
    for way, label in (("text", "engine, values as free text"), ("shape", "conclusive shape only")):
        benign = f"{counts[('benign', way)]}/{totals['benign']}"
        malicious = f"{counts[('malicious', way)]}/{totals['malicious']}"
        print(f"{label:<40} {benign:>16} {malicious:>18}")
    if flagged:
        print(f"  benign refused by free text: {', '.join(sorted(set(flagged)))}")


def reads_table(rounds: int) -> None:
    with EmulatorThread() as kube:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "conf"},
            "data": {"app.json": json.dumps({"listen": ":80", "pad": "x" * 1000})},
        }
        httpx.post(f"{kube.url}/api/v1/namespaces/apps/configmaps", json=body, timeout=10)
        factory = lambda: client.api_client(kube.url)  # noqa: E731
        watch = referenced.ConfigMapWatch(factory, max_bytes=64 << 20).start()
        watch.synced.wait(10)
        time.sleep(0.5)
        print("\nReading one ConfigMap for a review (kmock emulator on loopback)")
        print(f"{'path':<28} {'median us':>10} {'p99 us':>10}")
        for label, reader in (
            ("watched (memory)", referenced.ObjectReader(factory, watch=watch)),
            ("GET (miss, no watch)", referenced.ObjectReader(factory)),
        ):
            took = asyncio.run(_timed_reads(reader, rounds))
            took.sort()
            p99 = took[min(len(took) - 1, int(0.99 * len(took)))]
            print(f"{label:<28} {statistics.median(took):>10.0f} {p99:>10.0f}")
        watch.stop(1.0)


async def _timed_reads(reader: referenced.ObjectReader, rounds: int) -> list[float]:
    took = []
    for _ in range(rounds):
        began = time.perf_counter()
        await reader.fetch("apps", [("ConfigMap", "conf")], 2.0)
        took.append((time.perf_counter() - began) * 1e6)
    return took


def memory_table(count: int) -> None:
    ca = "-----BEGIN CERTIFICATE-----\n" + "M" * 1200 + "\n-----END CERTIFICATE-----\n"

    def listed() -> list[dict[str, Any]]:
        """The list as the client decodes it: every string an object of its own."""
        decoded: list[dict[str, Any]] = json.loads(
            json.dumps(
                [
                    {
                        "metadata": {"namespace": f"ns-{i}", "name": "kube-root-ca.crt"},
                        "data": {"ca.crt": ca},
                    }
                    for i in range(count)
                ]
            )
        )
        return decoded

    watch = referenced.ConfigMapWatch(lambda: None, max_bytes=1 << 40)
    items = listed()
    began = time.perf_counter()
    watch._replace(items)  # the list's fold, as the watch thread runs it
    took = time.perf_counter() - began
    watch._replace([])
    del items
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    items = listed()
    watch._replace(items)
    del items  # what the watch keeps, not the decoded list
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"\nConfigMap watch memory: {count} ConfigMaps of {len(ca)} chars")
    print(f"  held {held / 2**20:.1f} MiB ({held / count:.0f} B each), list folded in {took:.2f} s")


def resolver_cost(rounds: int) -> None:
    env = [
        {"name": f"V{i}", "valueFrom": {"configMapKeyRef": {"name": "c", "key": f"k{i}"}}}
        for i in range(10)
    ]
    raw = {
        "name": "app",
        "image": "x",
        "command": ["/app", "-c", "/etc/app/app.json"],
        "env": env,
        "volumeMounts": [{"name": "v", "mountPath": "/etc/app"}],
    }
    spec: dict[str, Any] = {
        "containers": [raw],
        "volumes": [{"name": "v", "configMap": {"name": "c"}}],
    }
    containers = (podspec.container(raw, podspec.ContainerKind.CONTAINER),)
    data = {f"k{i}": f"value-{i}" for i in range(10)} | {"app.json": '{"listen": ":80"}'}

    def lookup(kind: str, namespace: str, name: str) -> references.Data:
        return data

    began = time.perf_counter()
    for _ in range(rounds):
        references.resolve(containers, spec, "apps", lookup)
    per = (time.perf_counter() - began) / rounds * 1e6
    print(f"\nResolver: {per:.1f} us per pod (10 env references, one named file)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configmaps", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    admission_table()
    reads_table(args.rounds)
    memory_table(args.configmaps)
    resolver_cost(args.rounds * 10)


if __name__ == "__main__":
    main()

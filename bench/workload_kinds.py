"""Cost of reading workload CRDs, and the bound on the shape finder for unregistered kinds.

Run: .venv/bin/python bench/workload_kinds.py

Per kind: the time to read an object's containers (:mod:`minerguard.workloads`) and to judge
it whole (:func:`minerguard.evaluate.evaluate_object`, default policy), median of many runs,
for the upstream examples under tests/data/workloads and a Pod for reference. Then the worst
case the webhook can be handed for a kind registered without paths: a ~3 MiB object (the API
server's decode limit) of nested lists and maps, searched by shape within its bounds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from minerguard import evaluate, workloads
from minerguard.compiled_policy import default_policy
from minerguard.errors import UnsupportedObjectError

EXAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "workloads"
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "apps"},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "args": ["-g", "daemon off;"]}]},
}


def median_us(run: Callable[[], object], repeat: int = 300) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def hostile() -> dict[str, Any]:
    """About 3 MiB of nesting and breadth with no pod spec anywhere (the finder's worst case)."""
    leaf = {"x": [{"y": "z"} for _ in range(8)]}
    level: Any = leaf
    for _ in range(40):
        level = {"a": level, "b": [leaf] * 2}
    return {"kind": "Hostile", "spec": {"items": [level] * 20, "wide": [leaf] * 20_000}}


def main() -> None:
    policy = default_policy()
    cases: list[tuple[str, dict[str, Any]]] = [("Pod (reference)", POD)]
    for path in sorted(EXAMPLES.glob("*.yaml")):
        obj = yaml.safe_load(path.read_text())
        obj.setdefault("metadata", {})["namespace"] = "ci"
        cases.append((f"{obj['kind']} ({path.stem})", obj))
    print(f"{'object':<52} {'containers':>10} {'read µs':>9} {'judge µs':>9}")
    for label, obj in cases:
        found = workloads.BUILTIN.read(obj)
        read = median_us(functools.partial(workloads.BUILTIN.read, obj))
        judge = median_us(functools.partial(evaluate.evaluate_object, obj, [policy]))
        print(f"{label:<52} {len(found.template.containers):>10} {read:>9.1f} {judge:>9.1f}")
    big = hostile()
    size = len(json.dumps(big))

    def search() -> None:
        with contextlib.suppress(UnsupportedObjectError):
            workloads.find_pod_specs(big)

    took = median_us(search, repeat=15) / 1e3
    print(
        f"\nshape finder, {size / 2**20:.1f} MiB hostile object (no pod spec): "
        f"{took:.1f} ms median "
        f"(bounds: {workloads.FINDER_NODES} nodes, depth {workloads.FINDER_DEPTH})"
    )


if __name__ == "__main__":
    main()

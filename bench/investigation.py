"""Detection -> investigation complete: latency and what it costs, warm and cold registry.

Run: .venv/bin/python bench/investigation.py [--detections 30]

The real operator (minerguard_operator on kopf, the real ``kubernetes`` client) runs against the
kmock API emulator on loopback, with investigations on, reading Debian's ``docker-registry`` on
loopback (as in tests/integration/operator/test_investigation.py). Each detection targets its
own pod under an Alert-only policy whose trustedRegistries names the registry, so each
investigation reads the image's config, history and labels and compares the repository's tags.

- warm: every pod runs the same digest: after the first, the image part comes from the
  investigator's cache (``cost.cached``), the tags from the tag cache.
- cold: every pod runs a digest of its own, in a repository of its own: every read goes to the
  registry.

Detections are created one at a time, after one warm-up detection of another image (the
operator's first detection also waits for its watches and threads to start); the time is from
the create call until the emulator serves the status PATCH carrying ``investigation`` (taken
inside the emulator). API and registry calls per detection are the investigation's own
``cost``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.operator.harness import Cluster, OperatorThread, settings_for
from tests.integration.webhook import oci
from tests.kube_emulator import EmulatorThread


class Written:
    """When the emulator served each detection's investigation (by detection name)."""

    def __init__(self, kube: EmulatorThread) -> None:
        self.at: dict[str, float] = {}
        self.changed = threading.Condition()
        handle = kube.emu._handle

        async def spy(request: Any) -> Any:
            response = await handle(request)
            data = request.data if isinstance(request.data, dict) else {}
            if (data.get("status") or {}).get("investigation") and request.name:
                with self.changed:
                    self.at.setdefault(request.name, time.perf_counter())
                    self.changed.notify_all()
            return response

        kube.emu._handle = spy  # type: ignore[method-assign]

    def wait(self, name: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self.changed:
            while name not in self.at:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no investigation of {name} within {timeout:g} s")
                self.changed.wait(left)
            return self.at[name]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(kind: str, count: int, registry: oci.Registry) -> dict[str, Any]:
    """One scenario on a fresh emulator and operator."""
    images: list[tuple[str, str]] = []
    if kind == "warm":
        digest, _ = oci.push_image(registry.url, "acme/warm", tag="1")
        images = [(f"{registry.host}/acme/warm:1", digest)] * count
    else:
        for index in range(count):
            files = {"usr/bin/app": (f"#!/bin/sh\necho {index}\n".encode(), 0o755)}
            digest, _ = oci.push_image(registry.url, f"acme/cold-{index}", tag="1", files=files)
            images.append((f"{registry.host}/acme/cold-{index}:1", digest))
    with EmulatorThread() as kube:
        cluster = Cluster(kube.url)
        written = Written(kube)
        kube.answer_access_reviews(lambda spec: False)  # the authorizer answers every review
        cluster.policy(actions={"runtime": ["Alert"]}, trustedRegistries=[f"{registry.host}/acme/"])
        for index, (image, digest) in enumerate(images):
            cluster.pod(f"p-{index}", image=image, image_id=digest)
        settings = settings_for(
            kube.url,
            investigate=True,
            registry_insecure=[registry.host],
            registry_allowed_networks=["127.0.0.0/8"],
        )
        warmup, _ = oci.push_image(registry.url, "acme/warmup", tag="1")
        cluster.pod("p-warmup", image=f"{registry.host}/acme/warmup:1", image_id=warmup)
        operator = OperatorThread(settings).start()
        try:
            # Not measured: the operator's first detection also waits for its watches to start.
            cluster.detection("d-warmup", "p-warmup", layer="Exec")
            written.wait("d-warmup", 30)
            latencies = []
            for index in range(count):
                started = time.perf_counter()
                cluster.detection(f"d-{index}", f"p-{index}", layer="Exec")
                latencies.append(written.wait(f"d-{index}", 30) - started)
            costs = [
                (cluster.detection_status(f"d-{i}").get("investigation") or {}).get("cost") or {}
                for i in range(count)
            ]
        finally:
            operator.stop()
            cluster.api.close()
    return {
        "kind": kind,
        "latencies": latencies,
        "api": [c.get("apiCalls", 0) for c in costs],
        "registry": [c.get("registryCalls", 0) for c in costs],
        "cached": sum(1 for c in costs if c.get("cached")),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--detections", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("kopf").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as folder:
        storage = Path(folder) / "storage"
        storage.mkdir()
        with oci.Registry(storage, Path(folder)) as registry:
            results = [run(kind, args.detections, registry) for kind in ("warm", "cold")]
    print(f"Detection -> status.investigation written ({args.detections} detections each)")
    print("| registry | p50 | p99 | max | API calls/detection | registry calls/detection |")
    print("|---|---|---|---|---|---|")
    for found in results:
        lat = found["latencies"]
        print(
            f"| {found['kind']} ({found['cached']}/{len(lat)} cached) "
            f"| {percentile(lat, 0.5) * 1000:.0f} ms | {percentile(lat, 0.99) * 1000:.0f} ms "
            f"| {max(lat) * 1000:.0f} ms "
            f"| {statistics.mean(found['api']):.1f} (max {max(found['api'])}) "
            f"| {statistics.mean(found['registry']):.1f} (max {max(found['registry'])}) |"
        )


if __name__ == "__main__":
    main()

"""Image entrypoint resolution against a loopback registry: cold (registry) vs warm (cache).

Run: PYTHONPATH=. .venv/bin/python bench/webhook_resolve.py [--images 150]

Needs ``docker-registry``. Pushes N distinct single-arch images and N multi-arch indexes,
then resolves each once through the webhook's resolver (cold: manifest → [index → manifest]
→ config over HTTP keep-alive, digests checked), and again (warm: two cache look-ups), one
image at a time, as one admission review would. Cold is also measured behind token auth
(anonymous bearer token, fetched once per repository and then cached with the header).
"Pinned" is a pod whose nodeSelector names linux/amd64; "unpinned" one that names no
architecture, for which an index's entries (here amd64 and arm64, whose configs differ) are
all read, concurrently.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from minerguard.oci import egress, registry
from tests.integration.webhook import oci
from webhook import resolve


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def resolved(result: resolve.Resolution, ref: str) -> bool:
    return ref in result.configs or ref in result.per_platform


async def measure(
    hosts: list[str], refs: list[str], platform: resolve.PlatformChoice
) -> list[float]:
    client = registry.RegistryClient(insecure=hosts, policy=egress.AddressPolicy(egress.LOOPBACK))
    resolver = resolve.ImageResolver(client)
    times = []
    try:
        for ref in refs:
            started = time.perf_counter()
            result = await resolver.resolve_all([ref], platform, deadline=5)
            times.append((time.perf_counter() - started) * 1e3)
            assert resolved(result, ref), result.errors
        warm = []
        for ref in refs:
            started = time.perf_counter()
            result = await resolver.resolve_all([ref], platform, deadline=5)
            warm.append((time.perf_counter() - started) * 1e3)
            assert resolved(result, ref)
    finally:
        await client.aclose()
    return times + [-w for w in warm]  # warm ones marked negative


def main() -> int:
    cli = argparse.ArgumentParser()
    cli.add_argument("--images", type=int, default=150)
    args = cli.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mg-resolve-"))
    storage = folder / "storage"
    storage.mkdir()
    rows = []
    with (
        oci.TokenServer(folder, {}) as tokens,
        oci.Registry(storage, folder) as plain,
        oci.Registry(storage, folder, tokens) as guarded,
    ):
        started = time.perf_counter()
        singles, indexes = [], []
        for i in range(args.images):
            oci.push_image(
                plain.url, f"bench/single{i}", tag="1", entrypoint=["/app"], cmd=[str(i)]
            )
            amd = oci.push_image(plain.url, f"bench/multi{i}", entrypoint=["/app"], cmd=[str(i)])
            arm = oci.push_image(plain.url, f"bench/multi{i}", entrypoint=["/app"], arch="arm64")
            oci.push_index(plain.url, f"bench/multi{i}", "1", {"amd64": amd, "arm64": arm})
            singles.append(f"bench/single{i}:1")
            indexes.append(f"bench/multi{i}:1")
        print(f"pushed {2 * args.images} images in {time.perf_counter() - started:.1f}s")
        hosts = [plain.host, guarded.host, tokens.host]  # the realm is plain HTTP too
        pinned = registry.Platform()
        cases: dict[str, tuple[list[str], resolve.PlatformChoice]] = {
            "single-arch manifest": ([f"{plain.host}/{r}" for r in singles], pinned),
            "multi-arch index": ([f"{plain.host}/{r}" for r in indexes], pinned),
            "token auth, single-arch": ([f"{guarded.host}/{r}" for r in singles], pinned),
            "single-arch, unpinned": ([f"{plain.host}/{r}" for r in singles], None),
            "multi-arch, unpinned": ([f"{plain.host}/{r}" for r in indexes], None),
        }
        for name, (refs, platform) in cases.items():
            both = asyncio.run(measure(hosts, refs, platform))
            cold = [t for t in both if t >= 0]
            warm = [-t for t in both if t < 0]
            rows.append((name, "cold", cold))
            rows.append((name, "warm", warm))
    print()
    print(f"{'case':<26} {'cache':<5} {'n':>5} {'p50 (ms)':>9} {'p99 (ms)':>9} {'mean':>7}")
    for name, kind, values in rows:
        print(
            f"{name:<26} {kind:<5} {len(values):>5} {pct(values, 50):>9.3f} {pct(values, 99):>9.3f}"
            f" {statistics.fmean(values):>7.3f}"
        )
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

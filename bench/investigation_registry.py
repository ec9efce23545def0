"""The registry side of an investigation: image provenance read cold, warm, and with tags expired.

Run: PYTHONPATH=. .venv/bin/python bench/investigation_registry.py [--repos 50] [--tags 20]

Needs ``docker-registry``. Pushes, per repository, four builds of one image (the newest adds a
miner layer whose history names it) under ``--tags`` tags in all, two of them on the bad
digest, then reads each bad digest's provenance the way the operator does for a detection
(:class:`minerguard.oci.provenance.ProvenanceReader`, one client, loopback, keep-alive):

- cold: empty caches: manifest, config blob, tag listing, one manifest per tag (after one
  read of another repository, which compiles the signature bundle once per process);
- warm: the same digest again within the tag TTL: nothing asked;
- tags expired: the digest part from the cache, the tag map listed and compared again.

Prints latency p50/p99 and the registry calls each read cost (exact, per read).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from minerguard.oci import egress, registry
from minerguard.oci.provenance import ProvenanceReader
from tests.integration.webhook import oci

BASE = {"created_by": "/bin/sh -c #(nop) ADD file:4b03b5f551e3fbdf in / "}
SERVE = {"created_by": '/bin/sh -c #(nop)  CMD ["/usr/bin/app"]', "empty_layer": True}
MINER = {
    "created_by": "/bin/sh -c curl -fsSL -o /usr/local/bin/xmrig "
    "https://github.com/xmrig/xmrig/releases/download/v6.21.0/xmrig && chmod +x "
    "/usr/local/bin/xmrig"
}
RUN = {
    "created_by": '/bin/sh -c #(nop)  ENTRYPOINT ["/usr/local/bin/xmrig" "-o" '
    '"pool.supportxmr.com:443"]',
    "empty_layer": True,
}
LABELS = {
    "org.opencontainers.image.source": "https://git.example.com/acme/app",
    "org.opencontainers.image.revision": "0d9c2a7",
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def retag(url: str, repository: str, digest: str, tags: list[str]) -> None:
    status, headers, body = oci._http(
        "GET", f"{url}/v2/{repository}/manifests/{digest}", headers={"Accept": oci.OCI_MANIFEST}
    )
    assert status == 200, status
    for tag in tags:
        put = f"{url}/v2/{repository}/manifests/{tag}"
        status, _, _ = oci._http("PUT", put, body, {"Content-Type": headers["Content-Type"]})
        assert status == 201, status


def populate(url: str, repository: str, tags: int) -> str:
    """Four builds under ``tags`` tags; returns the bad build's digest (two tags on it)."""
    builds = []
    for n in range(3):
        digest, _ = oci.push_image(
            url, repository, cmd=[str(n)], history=[BASE, SERVE], labels=LABELS
        )
        builds.append(digest)
    bad, _ = oci.push_image(
        url,
        repository,
        tag="latest",
        more_layers=[{"usr/local/bin/xmrig": (b"#!/bin/sh\n", 0o755)}],
        history=[BASE, MINER, RUN],
        labels=LABELS,
    )
    retag(url, repository, bad, ["1.4"])
    others = [f"1.{n}.{k}" for n in range(3) for k in range((tags - 2) // 3 + 1)][: tags - 2]
    for index, tag in enumerate(others):
        retag(url, repository, builds[index % 3], [tag])
    return bad


async def measure(host: str, bads: dict[str, str]) -> dict[str, list[tuple[float, int]]]:
    now = [0.0]
    client = registry.RegistryClient(insecure=[host], policy=egress.AddressPolicy(egress.LOOPBACK))
    reader = ProvenanceReader(client, clock=lambda: now[0], tags_ttl_seconds=60)
    rows: dict[str, list[tuple[float, int]]] = {"cold": [], "warm": [], "tags expired": []}

    async def read(kind: str) -> None:
        for repository, digest in bads.items():
            started = time.perf_counter()
            found = await reader.read(
                f"{host}/{repository}:latest",
                digest,
                trusted=[f"{host}/bench/"],
                executable="/usr/local/bin/xmrig",
            )
            took = (time.perf_counter() - started) * 1e3
            assert found.provenance.tags == ["1.4", "latest"], (found.provenance.tags, found)
            assert any(step.suspect for step in found.provenance.history)
            rows[kind].append((took, found.registry_calls))

    try:
        # The first read of the process compiles the signature bundle (once): not a read's cost.
        warmup = bads.pop("bench/warmup")
        await reader.read(f"{host}/bench/warmup:latest", warmup)
        await read("cold")
        await read("warm")
        now[0] += 61
        await read("tags expired")
    finally:
        await client.aclose()
    return rows


def main() -> int:
    cli = argparse.ArgumentParser()
    cli.add_argument("--repos", type=int, default=50)
    cli.add_argument("--tags", type=int, default=20)
    args = cli.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mg-provenance-"))
    storage = folder / "storage"
    storage.mkdir()
    with oci.Registry(storage, folder) as served:
        started = time.perf_counter()
        names = ["bench/warmup", *(f"bench/app{i}" for i in range(args.repos))]
        with ThreadPoolExecutor(8) as pool:
            digests = list(pool.map(lambda r: populate(served.url, r, args.tags), names))
        bads = dict(zip(names, digests, strict=True))
        print(
            f"pushed {args.repos} repositories x {args.tags} tags "
            f"in {time.perf_counter() - started:.1f}s"
        )
        rows = asyncio.run(measure(served.host, bads))
    print()
    print(
        f"{'read':<13} {'n':>4} {'p50 (ms)':>9} {'p99 (ms)':>9} {'mean':>7}"
        f" {'calls/read':>10} {'min':>4} {'max':>4}"
    )
    for kind, values in rows.items():
        times = [t for t, _ in values]
        calls = [c for _, c in values]
        print(
            f"{kind:<13} {len(values):>4} {pct(times, 50):>9.2f} {pct(times, 99):>9.2f}"
            f" {statistics.fmean(times):>7.2f} {statistics.fmean(calls):>10.1f}"
            f" {min(calls):>4} {max(calls):>4}"
        )
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which entries of a multi-arch index a node would pull: containerd's rules, not a guess.

The image judged must be the image run, so the entries judged for a pod are exactly those a
node's container runtime might choose. containerd (the kubelet's runtime nearly everywhere;
CRI-O follows the same OCI platform rules) picks an entry like this (``containerd/platforms``,
``images.FilterPlatforms`` and ``images.LimitManifests``):

1. Both sides are normalised: OS lower-cased; ``x86_64``/``x86-64`` → ``amd64`` and its
   ``v1`` variant → none; ``aarch64`` → ``arm64``, its ``v8`` → none; ``armhf`` → ``arm/v7``,
   ``armel`` → ``arm/v6``, bare ``arm`` → ``arm/v7``; ``i386`` → ``386``.
2. The node's platform expands into an ordered vector of what it can run: ``amd64/v3`` runs
   ``amd64/v3``, ``amd64/v2``, ``amd64``, then ``386``; ``arm/v7`` runs ``v7``, ``v6``,
   ``v5``; ``arm64/v8.2`` runs ``v8.2`` … ``v8``, then ``arm/v8`` … ``arm/v5`` (``v9.x``
   also runs ``v8.(x+5)`` and below).
3. An entry matches when its normalised platform equals one in the vector (variants
   exactly), or when it declares no platform at all.
4. Matches are sorted by their place in the vector (entries without a platform last), stably,
   and the first is pulled.

The webhook does not know a node's CPU variant, so for a pod pinned to an architecture it
takes every variant such a node may report (and every variant the index itself declares) and
judges the union of what each would pull: ``[amd64/v99 benign, amd64 miner]`` judges the
miner, which every real amd64 node pulls. For an unpinned pod every Linux entry may run, and
so may an entry without a platform (chosen by a node whose architecture has no entry).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from minerguard.oci.registry import (
    MAX_PLATFORMS,
    RUNNABLE_OS,
    BadImage,
    Entry,
    Fetched,
    Platform,
    Runnable,
)

UNDECLARED = "unspecified"
"""The architecture shown for an index entry that declares no platform."""
MAX_VERSION = 16
"""Variant numbers above this are taken literally, never expanded (a hostile ``v999999999``)."""

NODE_VARIANTS: Mapping[str, tuple[str, ...]] = {
    "amd64": ("", "v2", "v3", "v4"),
    "arm": ("v5", "v6", "v7", "v8"),
    "arm64": ("", *(f"v8.{m}" for m in range(1, 10)), "v9", *(f"v9.{m}" for m in range(1, 6))),
}
"""Variants a node of each architecture may report (containerd's ``cpuVariant``)."""


def normalize(os: str, architecture: str, variant: str | None) -> Platform:
    """The fields an index entry declares, as containerd's ``platforms.Normalize`` reads them."""
    os, arch, var = os.lower(), architecture.lower(), (variant or "").lower()
    if os == "macos":
        os = "darwin"
    if arch == "i386":
        arch, var = "386", ""
    elif arch in ("x86_64", "x86-64", "amd64"):
        arch, var = "amd64", "" if var == "v1" else var
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        var = {"8": "", "v8": "", "v8.0": "", "9": "v9", "9.0": "v9", "v9.0": "v9"}.get(var, var)
    elif arch == "armhf":
        arch, var = "arm", "v7"
    elif arch == "armel":
        arch, var = "arm", "v6"
    elif arch == "arm":
        var = {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}.get(var, var)
    return Platform(os, arch, var or None)


def _number(variant: str | None) -> int | None:
    text = (variant or "").removeprefix("v")
    return int(text) if text.isdigit() and len(text) <= 3 else None


def _arm64(major: int, minor: int) -> list[tuple[int, int]]:
    """arm64 versions a ``v{major}.{minor}`` CPU runs, best first."""
    found = [(major, m) for m in range(minor, -1, -1)]
    if major == 9:
        found += [(8, m) for m in range(min(minor + 5, 9), -1, -1)]
    return found


def vector(node: Platform) -> list[Platform]:
    """What a node of this (normalised) platform runs, in containerd's order of preference."""
    os, arch = node.os, node.architecture
    result = [node]
    if arch == "amd64":
        level = _number(node.variant) or 1
        if 1 < level <= MAX_VERSION:
            result += [normalize(os, arch, f"v{v}") for v in range(level - 1, 0, -1)]
        result.append(Platform(os, "386"))
    elif arch == "arm":
        arm = _number(node.variant)
        if arm is not None and arm <= MAX_VERSION:
            result += [Platform(os, arch, f"v{v}") for v in range(arm - 1, 4, -1)]
    elif arch == "arm64":
        major, _, minor = (node.variant or "v8").removeprefix("v").partition(".")
        if major.isdigit() and major in ("8", "9") and (minor or "0").isdigit():
            pairs = _arm64(int(major), min(int(minor or "0"), 9))
            result = [normalize(os, arch, f"v{a}.{b}" if b else f"v{a}") for a, b in pairs]
            result += vector(Platform(os, "arm", "v8"))
    return list(dict.fromkeys(result))


def _entries(index: Fetched) -> Iterator[tuple[Platform | None, str]]:
    """(normalised declared platform or None, manifest digest) of each entry of an index."""
    entries = index.document.get("manifests")
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("digest"), str):
            continue
        declared: Any = entry.get("platform")
        if declared is None:
            yield None, entry["digest"]
        elif isinstance(declared, Mapping):
            os, arch, var = (
                declared.get("os"),
                declared.get("architecture"),
                declared.get("variant"),
            )
            if isinstance(os, str) and isinstance(arch, str):
                yield normalize(os, arch, var if isinstance(var, str) else None), entry["digest"]


def choose(index: Fetched, node: Platform) -> Entry | None:
    """The entry a node of ``node``'s platform pulls, or None (the pull would fail)."""
    order = {p: i for i, p in enumerate(vector(node))}
    best: tuple[int, Entry] | None = None
    for declared, digest in _entries(index):
        rank = len(order) if declared is None else order.get(declared)
        if rank is None or (best is not None and best[0] <= rank):
            continue
        best = (rank, Entry(declared or Platform(node.os, UNDECLARED), digest))
    return best[1] if best else None


def nodes(index: Fetched, pinned: Platform) -> list[Platform]:
    """Every platform a node matching a pod's OS and architecture pin may report."""
    base = normalize(pinned.os, pinned.architecture, pinned.variant)
    if pinned.variant:
        return [base]
    variants = list(NODE_VARIANTS.get(base.architecture, ("",)))
    for declared, _ in _entries(index):
        if declared and (declared.os, declared.architecture) == (base.os, base.architecture):
            variants.append(declared.variant or "")
    return [Platform(base.os, base.architecture, v or None) for v in dict.fromkeys(variants)]


def candidates(
    index: Fetched, name: str, pinned: Platform | None, limit: int = MAX_PLATFORMS
) -> Runnable:
    """The entries to judge: those of the first ``limit`` distinct manifests (the cost).

    ``pinned`` None: any Linux node, so every Linux entry and every entry without a platform
    (buildx's attestations declare ``unknown/unknown`` and are never pulled, so never judged).
    Manifests past the limit are counted in :attr:`Runnable.unjudged`, never dropped silently.
    """
    found: dict[Entry, None] = {}
    if pinned is None:
        for declared, digest in _entries(index):
            if declared is None:
                found[Entry(Platform(RUNNABLE_OS, UNDECLARED), digest)] = None
            elif declared.os == RUNNABLE_OS and declared.architecture not in ("", "unknown"):
                found[Entry(declared, digest)] = None
        what = RUNNABLE_OS
    else:
        for node in nodes(index, pinned):
            chosen = choose(index, node)
            if chosen is not None:
                found[chosen] = None
        what = str(pinned)
    if not found:
        raise BadImage(f"{name}: no {what} image in its index")
    digests = list(dict.fromkeys(e.digest for e in found))
    judged = set(digests[:limit])
    entries = tuple(e for e in found if e.digest in judged)
    return Runnable(entries, max(len(digests) - limit, 0))

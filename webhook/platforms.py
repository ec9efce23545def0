"""Judging containers whose image runs different things on different platforms.

A pod that pins no architecture may be scheduled on any node of a mixed cluster, so when its
image is a multi-arch index whose entries differ (:class:`~webhook.resolve.PerPlatform`),
every one of them must pass: otherwise a benign amd64 entry would admit a miner that runs on
the arm64 nodes. The decision stays :func:`minerguard.evaluate.evaluate_containers`' (through
the memo, so replicas still cost one evaluation): it is taken once per *layer*, a layer being
one variant of each such image, and the layers are merged so that each container under each
policy keeps its most severe finding. A finding that only some platforms produce names them,
in the message and in the evidence recorded for it.

An index with more runnable entries than are judged (:data:`MAX_PLATFORMS`) is not passed on
the strength of the entries that were: a container using it that no judged entry convicts is
*unverified*, exactly as if its registry had failed, and the policy's ``onRegistryFailure``
decides (an attacker would otherwise put the miner 17th).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from minerguard import podspec
from minerguard.compiled_policy import CompiledPolicy
from minerguard.evaluate import Decision, Finding, Unverified
from minerguard.oci.registry import MAX_PLATFORMS, RUNNABLE_OS
from webhook.memo import DecisionMemo
from webhook.resolve import PerPlatform, Variant

Layer = tuple[dict[str, podspec.ImageConfig], dict[str, Variant]]
"""The configs one evaluation sees, and which variant each multi-arch image contributed."""


def layers(
    configs: Mapping[str, podspec.ImageConfig], per_platform: Mapping[str, PerPlatform]
) -> list[Layer]:
    """As many layers as the most varied image has variants; shorter ones repeat their last.

    Containers are judged independently, so layer ``i`` pairing variant ``i`` of one image
    with variant ``i`` of another loses nothing: every variant of every image is in a layer.
    """
    depth = max(len(p.variants) for p in per_platform.values())
    result: list[Layer] = []
    for i in range(depth):
        chosen = {
            image: p.variants[min(i, len(p.variants) - 1)] for image, p in per_platform.items()
        }
        seen = dict(configs)
        seen.update((image, variant.config) for image, variant in chosen.items())
        result.append((seen, chosen))
    return result


def decide(
    memo: DecisionMemo,
    *,
    containers: tuple[podspec.Container, ...],
    labels: Mapping[str, str],
    namespace: str | None,
    namespace_labels: Mapping[str, str],
    policies: tuple[CompiledPolicy, ...],
    configs: Mapping[str, podspec.ImageConfig],
    per_platform: Mapping[str, PerPlatform],
    errors: Mapping[str, str],
) -> Decision:
    """The worst decision over every platform the pod's images may run on."""
    errors = {**errors, **gaps(per_platform)}
    decided = [
        (
            memo.decide(
                containers=containers,
                labels=labels,
                namespace=namespace,
                namespace_labels=namespace_labels,
                policies=policies,
                configs=seen,
                errors=errors,
            ),
            chosen,
        )
        for seen, chosen in layers(configs, per_platform)
    ]
    return worst(decided, containers)


def worst(
    decided: Sequence[tuple[Decision, Mapping[str, Variant]]],
    containers: Sequence[podspec.Container],
) -> Decision:
    """Merge per-layer decisions: per policy, container and probe or hook, the top finding.

    A finding every layer produced alike does not depend on the platform and is kept as it
    is; any other names the platforms of the variant it came from.
    """
    found: dict[tuple[str, podspec.Container, str | None], list[tuple[Finding, Variant | None]]]
    found = {}
    for decision, chosen in decided:
        for finding in decision.findings:
            key = (finding.policy.name, finding.container, finding.origin)
            found.setdefault(key, []).append((finding, chosen.get(finding.container.image)))
    findings: list[Finding] = []
    for seen in found.values():
        finding, variant = max(seen, key=lambda pair: pair[0].verdict.score)  # first on ties
        alike = len(seen) == len(decided) and all(f.verdict == finding.verdict for f, _ in seen)
        findings.append(finding if alike or variant is None else named(finding, variant))
    policy_rank = {name: i for i, name in enumerate(decided[0][0].policies)}
    container_rank = {c: i for i, c in enumerate(containers)}
    findings.sort(
        key=lambda f: (policy_rank[f.policy.name], container_rank[f.container], f.origin or "")
    )
    unverified: dict[tuple[str, podspec.Container, str | None], Unverified] = {}
    for decision, _ in decided:
        for item in decision.unverified:
            key = (item.policy.name, item.container, item.origin)
            if key not in found:  # convicted elsewhere
                unverified.setdefault(key, item)
    exempt = dict.fromkeys(line for decision, _ in decided for line in decision.exempt)
    return Decision(
        tuple(findings), tuple(unverified.values()), tuple(exempt), decided[0][0].policies
    )


def named(finding: Finding, variant: Variant) -> Finding:
    """The finding with each signal saying which platforms' image config it was found in."""
    if finding.origin is not None or not podspec.needs_image_config(finding.container):
        return finding  # the pod's own command: the same wherever it runs
    prefix = f"image config ({variant}): "
    signals = tuple(
        dataclasses.replace(s, detail=prefix + s.detail) for s in finding.verdict.signals
    )
    return dataclasses.replace(
        finding, verdict=dataclasses.replace(finding.verdict, signals=signals)
    )


def gaps(per_platform: Mapping[str, PerPlatform]) -> dict[str, str]:
    """Images some of whose runnable entries were not judged, and why, as image errors."""
    return {
        image: f"only {MAX_PLATFORMS} of its index's entries were judged, {p.unjudged} more "
        "were not"
        for image, p in per_platform.items()
        if p.unjudged
    }


def unjudged(per_platform: Mapping[str, PerPlatform]) -> tuple[str, ...]:
    """Warnings for indexes with more runnable entries than were judged."""
    return tuple(
        f"minerguard: image {image}: only the first {MAX_PLATFORMS} {RUNNABLE_OS} platforms "
        f"of its index were judged, {p.unjudged} more were not"
        for image, p in per_platform.items()
        if p.unjudged
    )

"""Multi-arch images: which index entries count, and the worst one decides an unpinned pod."""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.oci import registry
from minerguard.oci.registry import Platform
from minerguard.podspec import ImageConfig
from tests.support import policy
from tests.unit.webhook.helpers import CLOSED, Sink, container, pod, request
from webhook import matching, memo, resolve
from webhook.admission import Reviewer, platform
from webhook.resolve import PerPlatform, Variant
from webhook.settings import WebhookSettings

INDEX = "sha256:" + "0" * 64
IMAGE = "registry.example/mixed/app:1"
POOL = "stratum+tcp://pool.supportxmr.com:3333"
GOOD = ImageConfig(entrypoint=("/app",), cmd=("--serve",), digest=INDEX)
BAD = ImageConfig(entrypoint=("/app", "-o", POOL), digest=INDEX)
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def index(*platforms: Any) -> registry.Fetched:
    """An index whose n-th entry has digest n+1 and the given ``platform`` field."""
    manifests = [
        {"mediaType": registry.OCI_MANIFEST, "digest": digest(i + 1), "platform": p}
        for i, p in enumerate(platforms)
    ]
    return registry.Fetched(registry.OCI_INDEX, INDEX, {"manifests": manifests})


def test_only_linux_image_entries_are_runnable_in_index_order() -> None:
    chosen = matching.candidates(
        index(
            {"os": "linux", "architecture": "amd64"},
            {"os": "unknown", "architecture": "unknown"},  # buildx attestation manifest
            {"os": "windows", "architecture": "amd64"},
            {"os": "linux", "architecture": "arm64", "variant": "v8"},
            {"os": "linux"},  # no architecture: nothing a node would match
            "not a platform",
            {"os": "linux", "architecture": "arm", "variant": 7},  # odd variant: ignored
        ),
        "x",
        None,
    )
    assert chosen.entries == (  # normalised as containerd does: arm64/v8 is arm64, arm is v7
        registry.Entry(AMD64, digest(1)),
        registry.Entry(Platform("linux", "arm64"), digest(4)),
        registry.Entry(Platform("linux", "arm", "v7"), digest(7)),
    )
    assert chosen.unjudged == 0


def test_entries_past_the_limit_are_counted_not_judged() -> None:
    arches = [{"os": "linux", "architecture": f"arch{i}"} for i in range(5)]
    chosen = matching.candidates(index(*arches), "x", None, limit=3)
    assert [e.platform.architecture for e in chosen.entries] == ["arch0", "arch1", "arch2"]
    assert chosen.unjudged == 2
    # The cost is per distinct manifest: one manifest listed under many platforms is one.
    same = registry.Fetched(
        registry.OCI_INDEX,
        INDEX,
        {"manifests": [{"digest": digest(1), "platform": a} for a in arches]},
    )
    assert len(matching.candidates(same, "x", None, limit=1).entries) == 5


def test_an_index_with_no_linux_image_is_a_bad_image() -> None:
    only = index(
        {"os": "unknown", "architecture": "unknown"}, {"os": "windows", "architecture": "amd64"}
    )
    with pytest.raises(registry.BadImage, match="no linux image"):
        matching.candidates(only, "x", None)


def test_entries_that_agree_collapse_to_one_config() -> None:
    assert resolve.combine([(AMD64, GOOD), (ARM64, GOOD)]) is GOOD
    grouped = resolve.combine([(AMD64, GOOD), (ARM64, BAD), (Platform("linux", "s390x"), GOOD)])
    assert grouped == PerPlatform(
        (Variant((AMD64, Platform("linux", "s390x")), GOOD), Variant((ARM64,), BAD))
    )
    assert str(grouped.variants[0]) == "linux/amd64, linux/s390x"
    assert resolve.combine([(AMD64, GOOD)], unjudged=3) == PerPlatform(
        (Variant((AMD64,), GOOD),), 3
    )


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, None),
        ({}, None),
        ({"kubernetes.io/os": "linux"}, None),
        ({"kubernetes.io/arch": "arm64"}, ARM64),
        ({"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"}, AMD64),
        ({"kubernetes.io/os": "windows"}, Platform("windows", "amd64")),
    ],
)
def test_only_a_pinned_architecture_narrows_the_platforms(
    selector: dict[str, str] | None, expected: Platform | None
) -> None:
    spec = {} if selector is None else {"nodeSelector": selector}
    assert platform(spec, Platform()) == expected


def mixed_reviewer(
    resolved: resolve.Resolved, sink: Sink | None = None, **single: ImageConfig
) -> Reviewer:
    """IMAGE resolves to ``resolved`` unpinned, GOOD on amd64, BAD on arm64; ``single``
    names single-arch images (``name=config`` → ``registry.example/name:1``)."""
    resolver = resolve.ImageResolver(registry.RegistryClient(insecure=[CLOSED]))
    resolver.prime(IMAGE, None, resolved)
    resolver.prime(IMAGE, AMD64, GOOD)
    resolver.prime(IMAGE, ARM64, BAD)
    for name, config in single.items():
        resolver.prime(f"registry.example/{name}:1", None, config)
    fixed = (policy(),)
    return Reviewer(
        WebhookSettings(), memo.MemoPolicies(lambda: fixed), resolver, sink=sink or Sink()
    )


MIXED = PerPlatform((Variant((AMD64,), GOOD), Variant((ARM64,), BAD)))


async def test_an_unpinned_pod_is_judged_on_its_worst_platform_and_the_message_names_it() -> None:
    sink = Sink()
    answer = await mixed_reviewer(MIXED, sink).review(request(pod(container(image=IMAGE))))
    assert not answer.allowed
    assert "image config (linux/arm64): " in answer.message
    assert "linux/amd64" not in answer.message
    assert [f.image_digest for f in answer.findings] == [INDEX]
    detection, _ = sink.items[0]
    assert detection is not None
    assert detection.spec.reasons[0].detail.startswith("image config (linux/arm64): ")


@pytest.mark.parametrize(("arch", "allowed"), [("amd64", True), ("arm64", False)])
async def test_a_pinned_pod_is_judged_on_its_platform_only(arch: str, allowed: bool) -> None:
    pinned = pod(container(image=IMAGE), nodeSelector={"kubernetes.io/arch": arch})
    answer = await mixed_reviewer(MIXED).review(request(pinned))
    assert answer.allowed is allowed
    assert "image config (" not in answer.message


async def test_a_finding_every_platform_shares_does_not_name_one() -> None:
    other = ImageConfig(entrypoint=("xmrig", "-o", POOL), digest=digest(9))
    both = pod(container(image=IMAGE), container("d", "registry.example/miner:1"))
    answer = await mixed_reviewer(MIXED, miner=other).review(request(both))
    assert not answer.allowed
    mixed, single = answer.message.split('; container "d"')
    assert 'container "c"' in mixed
    assert "image config (linux/arm64)" in mixed
    assert "image config (" not in single
    assert [f.container.name for f in answer.findings] == ["c", "d"]


async def test_a_command_override_is_the_same_on_every_platform() -> None:
    replaced = container(image=IMAGE, command=["/bin/sleep", "1d"])
    answer = await mixed_reviewer(MIXED).review(request(pod(replaced, container("d", IMAGE))))
    assert not answer.allowed
    assert 'container "c"' not in answer.message
    assert 'container "d"' in answer.message


async def test_platforms_left_unjudged_are_unverified_warned_about_and_audited() -> None:
    answer = await mixed_reviewer(PerPlatform((Variant((AMD64,), GOOD),), 4)).review(
        request(pod(container(image=IMAGE)))
    )
    assert answer.allowed  # the policy allows what it cannot verify
    assert answer.warnings == (
        f'minerguard: container "c": entrypoint of image {IMAGE} not verified (only '
        f"{registry.MAX_PLATFORMS} of its index's entries were judged, 4 more were not) "
        '[MinerPolicy "guard"]',
        f"minerguard: image {IMAGE}: only the first {registry.MAX_PLATFORMS} linux platforms "
        "of its index were judged, 4 more were not",
    )
    assert "4 more were not" in answer.annotations["unverified"]
    assert "4 more were not" in answer.annotations["incomplete"]

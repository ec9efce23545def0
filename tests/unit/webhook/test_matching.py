"""Index entries a node pulls, by containerd's platform rules (normalise, vector, first match)."""

from __future__ import annotations

from typing import Any

from minerguard.oci import registry
from minerguard.oci.registry import Platform
from webhook import matching


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def index(*platforms: Any) -> registry.Fetched:
    """An index whose n-th entry has digest n+1 and the given ``platform`` (None: omitted)."""
    manifests: list[dict[str, Any]] = []
    for i, platform in enumerate(platforms):
        entry: dict[str, Any] = {"mediaType": registry.OCI_MANIFEST, "digest": digest(i + 1)}
        if platform is not None:
            entry["platform"] = platform
        manifests.append(entry)
    return registry.Fetched(registry.OCI_INDEX, digest(0), {"manifests": manifests})


def linux(arch: str, variant: str | None = None) -> dict[str, str]:
    found = {"os": "linux", "architecture": arch}
    return found | ({"variant": variant} if variant else {})


def test_aliases_normalise_as_in_containerd() -> None:
    assert matching.normalize("Linux", "x86_64", "v1") == Platform("linux", "amd64")
    assert matching.normalize("linux", "aarch64", "v8") == Platform("linux", "arm64")
    assert matching.normalize("linux", "arm64", "9.0") == Platform("linux", "arm64", "v9")
    assert matching.normalize("linux", "armhf", None) == Platform("linux", "arm", "v7")
    assert matching.normalize("linux", "arm", None) == Platform("linux", "arm", "v7")
    assert matching.normalize("linux", "i386", None) == Platform("linux", "386")


def test_a_node_prefers_its_own_variant_then_older_ones_then_the_32_bit_arch() -> None:
    assert matching.vector(Platform("linux", "amd64", "v3")) == [
        Platform("linux", "amd64", "v3"),
        Platform("linux", "amd64", "v2"),
        Platform("linux", "amd64"),
        Platform("linux", "386"),
    ]
    assert matching.vector(Platform("linux", "arm", "v7")) == [
        Platform("linux", "arm", v) for v in ("v7", "v6", "v5")
    ]
    arm64 = matching.vector(Platform("linux", "arm64", "v8.2"))
    assert arm64[:3] == [Platform("linux", "arm64", v) for v in ("v8.2", "v8.1", None)]
    assert arm64[3:] == [Platform("linux", "arm", v) for v in ("v8", "v7", "v6", "v5")]


def test_a_node_pulls_the_best_match_and_an_entry_without_platform_last() -> None:
    both = index(linux("amd64", "v2"), linux("amd64"), None)

    def pulled(node: Platform) -> str | None:
        chosen = matching.choose(both, node)
        return chosen.digest if chosen else None

    assert pulled(Platform("linux", "amd64", "v3")) == digest(1)
    assert pulled(Platform("linux", "amd64")) == digest(2)
    assert pulled(Platform("linux", "s390x")) == digest(3)
    assert matching.choose(index(linux("arm64")), Platform("linux", "amd64")) is None


def test_a_pinned_pod_is_judged_on_what_any_node_of_its_arch_pulls() -> None:
    # An unknown variant no node reports first, the entry every amd64 node pulls second.
    chosen = matching.candidates(
        index(linux("amd64", "v99"), linux("amd64")), "x", Platform("linux", "amd64")
    )
    assert {e.digest for e in chosen.entries} == {digest(1), digest(2)}
    # No amd64 entry: amd64 nodes fall back to 386, or to an entry without a platform.
    fallback = matching.candidates(
        index(linux("arm64"), linux("386"), None), "x", Platform("linux", "amd64")
    )
    assert [e.digest for e in fallback.entries] == [digest(2)]
    bare = matching.candidates(index(linux("arm64"), None), "x", Platform("linux", "amd64"))
    assert [str(e.platform) for e in bare.entries] == [f"linux/{matching.UNDECLARED}"]


def test_an_unpinned_pod_is_judged_on_every_linux_entry_and_those_without_platform() -> None:
    chosen = matching.candidates(
        index(linux("amd64"), {"os": "Linux", "architecture": "x86_64", "variant": "v3"}, None),
        "x",
        None,
    )
    assert [e.digest for e in chosen.entries] == [digest(1), digest(2), digest(3)]


def test_a_hostile_variant_number_is_not_expanded() -> None:
    assert len(matching.vector(Platform("linux", "amd64", "v999"))) == 2

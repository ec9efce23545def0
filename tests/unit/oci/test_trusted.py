"""Whether an image is ours: trustedRegistries entries against image references, pure."""

from __future__ import annotations

import pytest

from minerguard.oci.provenance import trusted_by


@pytest.mark.parametrize(
    ("image", "entries", "expected"),
    [
        ("registry.example.com/team/app:1", ["registry.example.com"], "registry.example.com"),
        ("localhost:5000/app@sha256:" + "a" * 64, ["localhost:5000"], "localhost:5000"),
        ("ghcr.io/acme/app:2", ["ghcr.io/acme/"], "ghcr.io/acme/"),
        ("ghcr.io/acme/app:2", ["ghcr.io/acme"], "ghcr.io/acme"),
        ("ghcr.io/acme/app", ["ghcr.io/acme/app"], "ghcr.io/acme/app"),
        ("ghcr.io/acme/app/worker:3", ["ghcr.io/acme/app"], "ghcr.io/acme/app"),
        ("GHCR.io/Acme/App:1", ["ghcr.io/acme/"], "ghcr.io/acme/"),
        ("ghcr.io/acme/app", ["https://ghcr.io/acme/"], "https://ghcr.io/acme/"),
    ],
)
def test_an_image_under_a_trusted_host_or_prefix_is_ours(
    image: str, entries: list[str], expected: str
) -> None:
    assert trusted_by(image, entries) == expected


@pytest.mark.parametrize(
    ("image", "entry"),
    [
        ("ghcr.io/acmecorp/app", "ghcr.io/acme"),
        ("ghcr.io/acmecorp/app", "ghcr.io/acme/"),
        ("ghcr.io/acme/application", "ghcr.io/acme/app"),
        ("registry.example.com.attacker.io/app", "registry.example.com"),
        ("attacker.io/registry.example.com/app", "registry.example.com"),
        ("attacker.io/ghcr.io/acme/app", "ghcr.io/acme/"),
        ("localhost:5001/app", "localhost:5000"),
        ("ghcr.io/acme/app", "docker.io/acme/"),
    ],
)
def test_a_prefix_matches_only_whole_path_segments_of_the_same_registry(
    image: str, entry: str
) -> None:
    assert trusted_by(image, [entry]) is None


@pytest.mark.parametrize(
    ("image", "entry"),
    [
        ("nginx:1.25", "docker.io"),
        ("nginx:1.25", "index.docker.io"),
        ("nginx", "docker.io/library/"),
        ("nginx:1.25", "nginx"),
        ("docker.io/library/nginx", "nginx"),
        ("index.docker.io/library/nginx:1", "docker.io/nginx"),
        ("acme/app:1", "docker.io/acme/"),
        ("acme/app:1", "acme/"),
        ("registry-1.docker.io/acme/app", "acme/app"),
    ],
)
def test_docker_hub_names_are_read_the_way_the_runtime_reads_them(image: str, entry: str) -> None:
    assert trusted_by(image, [entry]) == entry


def test_a_docker_hub_name_without_a_slash_is_the_official_image_not_an_organisation() -> None:
    # "docker.io/acme" is what the runtime pulls for "acme": docker.io/library/acme.
    assert trusted_by("acme/app", ["docker.io/acme"]) is None
    assert trusted_by("acme", ["docker.io/acme"]) == "docker.io/acme"


def test_the_first_matching_entry_is_named_and_junk_entries_are_skipped() -> None:
    entries = [
        "",
        "   ",
        "ghcr.io/acme@sha256:" + "0" * 64,
        "bad entry",
        "ghcr.io",
        "ghcr.io/acme/",
    ]
    assert trusted_by("ghcr.io/acme/app", entries) == "ghcr.io"


def test_no_entries_means_foreign() -> None:
    assert trusted_by("registry.example.com/app", []) is None

"""Image references, platforms and configs as the registry client reads them."""

from __future__ import annotations

import pytest

from minerguard.oci import registry
from webhook import matching, references


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", ("docker.io", "library/nginx", None, None)),
        ("quay.io/org/app:V1.0", ("quay.io", "org/app", "V1.0", None)),
        ("127.0.0.1:5000/a/b:1", ("127.0.0.1:5000", "a/b", "1", None)),
        ("alpine@sha256:" + "a" * 64, ("docker.io", "library/alpine", None, "sha256:" + "a" * 64)),
    ],
)
def test_references_keep_the_tag_as_written(
    image: str, expected: tuple[str, str, str | None, str | None]
) -> None:
    ref = references.reference(image)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize(
    "image",
    [
        "",
        "Nginx",
        "ghcr.io/Org/app:1",
        "a b",
        "x:y:z",
        "img@sha256:short",
        "é/x",
        "a" * 600,
        "a/../b",
    ],
)
def test_malformed_references_are_refused_before_any_request(image: str) -> None:
    with pytest.raises(registry.BadImage):
        references.reference(image)


def test_platforms_parse_and_print() -> None:
    arm = registry.Platform.parse("linux/arm64/v8")
    assert str(arm) == "linux/arm64/v8"
    assert registry.Platform.parse("linux/amd64") == registry.Platform()


def test_an_index_without_the_platform_is_a_bad_image() -> None:
    index = registry.Fetched(
        registry.OCI_INDEX,
        "sha256:" + "0" * 64,
        {
            "manifests": [
                {
                    "digest": "sha256:" + "1" * 64,
                    "platform": {"os": "linux", "architecture": "s390x"},
                }
            ]
        },
    )
    with pytest.raises(registry.BadImage, match="no linux/amd64 image"):
        matching.candidates(index, "x", registry.Platform())


def test_image_configs_tolerate_missing_and_odd_fields() -> None:
    config = registry.image_config(
        {"config": {"Entrypoint": None, "Cmd": ["run", 3], "Env": ["A=1", "B", "=x", "C=a=b"]}},
        "sha256:" + "2" * 64,
    )
    assert config.entrypoint == ()
    assert config.cmd == ("run", "3")
    assert config.env == (("A", "1"), ("B", ""), ("C", "a=b"))
    assert registry.image_config({}, "d").cmd == ()

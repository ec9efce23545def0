"""Which entry of an index an investigation reads the history from."""

from __future__ import annotations

from typing import Any

from minerguard.oci import registry
from minerguard.oci.provenance import platforms

INDEX: dict[str, Any] = {
    "manifests": [
        {"digest": "sha256:" + "a" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:" + "b" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
    ]
}


def test_the_node_platform_named_by_the_caller_is_not_a_guess_even_when_it_is_amd64() -> None:
    entry, guessed = platforms.choose(INDEX, platforms.wanted("linux/amd64"))
    assert entry is not None
    assert entry.digest == "sha256:" + "a" * 64
    assert not guessed
    entry, guessed = platforms.choose(INDEX, platforms.wanted("linux/arm64"))
    assert entry is not None
    assert entry.digest == "sha256:" + "b" * 64
    assert not guessed


def test_without_a_platform_amd64_is_read_and_called_a_guess() -> None:
    assert platforms.wanted(None) is None
    assert platforms.wanted("junk") is None
    entry, guessed = platforms.choose(INDEX, platforms.wanted(None))
    assert entry is not None
    assert entry.platform == registry.Platform("linux", "amd64")
    assert guessed


def test_a_platform_the_index_lacks_falls_back_to_its_first_linux_entry_as_a_guess() -> None:
    entry, guessed = platforms.choose(INDEX, platforms.wanted("linux/s390x"))
    assert entry is not None
    assert entry.digest == "sha256:" + "a" * 64
    assert guessed

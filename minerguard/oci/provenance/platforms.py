"""Which entry of an index a read takes the history from: the node's platform, else a guess."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minerguard.oci import registry

DEFAULT_PLATFORM = registry.Platform()
"""linux/amd64: what most clusters run, read when the caller names no platform."""


def wanted(text: str | None) -> registry.Platform | None:
    """The platform a caller names (``linux/arm64``); None when it names none usable."""
    if not text or text.count("/") not in (1, 2):
        return None
    return registry.Platform.parse(text.lower())


def choose(
    index: Mapping[str, Any], wanted: registry.Platform | None
) -> tuple[registry.Entry | None, bool]:
    """The entry for ``wanted``, else the first linux entry; and whether that was a guess.

    An entry asked for by the caller (the node's platform) is read as such, linux/amd64
    included; with none asked for, :data:`DEFAULT_PLATFORM` (what most clusters run) is read
    and named as a guess in the notes.
    """
    guessing = wanted is None
    wanted = wanted or DEFAULT_PLATFORM
    entries = index.get("manifests")
    first_linux: registry.Entry | None = None
    for item in entries[: registry.MAX_PLATFORMS * 4] if isinstance(entries, list) else ():
        if not isinstance(item, dict):
            continue
        digest, declared = item.get("digest"), item.get("platform")
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            continue
        declared = declared if isinstance(declared, dict) else {}
        found = registry.Platform(
            str(declared.get("os", "")),
            str(declared.get("architecture", "")),
            str(declared["variant"]) if declared.get("variant") else None,
        )
        entry = registry.Entry(found, digest)
        if (found.os, found.architecture) == (wanted.os, wanted.architecture) and (
            wanted.variant is None or found.variant == wanted.variant
        ):
            return entry, guessing
        if first_linux is None and found.os == registry.RUNNABLE_OS:
            first_linux = entry
    return first_linux, True

"""Whether an image is ours: a reference against the policies' ``trustedRegistries``."""

from __future__ import annotations

from collections.abc import Sequence

from minerguard import images


def trusted_by(image: str, prefixes: Sequence[str]) -> str | None:
    """The trustedRegistries entry that makes this image ours, or None (foreign).

    Entries are a registry host (``registry.example.com``, ``localhost:5000``) or a repository
    prefix (``ghcr.io/acme/``, ``ghcr.io/acme/app``). Both sides are read the way the runtime
    reads a reference (:func:`minerguard.images.parse`: ``docker.io`` and ``library/`` filled
    in), and a prefix matches only whole path segments: ``ghcr.io/acme`` covers
    ``ghcr.io/acme/app`` but never ``ghcr.io/acmecorp/app``. The first matching entry wins.
    Pure; never raises.
    """
    ref = images.parse(image)
    for entry in prefixes:
        matched = _entry(entry)
        if matched is None:
            continue
        host, prefix = matched
        if host != ref.registry:
            continue
        if prefix is None or ref.repository == prefix or ref.repository.startswith(prefix + "/"):
            return entry
    return None


def _entry(text: str) -> tuple[str, str | None] | None:
    """(registry, repository prefix or None for the whole registry) of one entry; None: junk."""
    entry = text.strip().lower()
    for scheme in ("https://", "http://"):
        entry = entry.removeprefix(scheme)
    namespace = entry.endswith("/")
    entry = entry.strip("/")
    if not entry or "@" in entry or any(c.isspace() for c in entry):
        return None
    if "/" not in entry and ("." in entry or ":" in entry or entry == "localhost"):
        return images.parse(f"{entry}/_").registry, None
    if namespace:
        # "acme/" is a namespace: keep parse from reading it as Docker Hub's library/acme.
        ref = images.parse(f"{entry}/_")
        return ref.registry, ref.repository.removesuffix("/_")
    ref = images.parse(entry)
    return ref.registry, ref.repository

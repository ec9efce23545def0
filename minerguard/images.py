"""Container image references, parsed the way the container runtime does."""

from __future__ import annotations

from dataclasses import dataclass, field

import re2

DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed image reference: ``registry/repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """``registry/repository``, the key signatures and exemptions match on."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


def parse(ref: str) -> ImageRef:
    """Parse an image reference; Docker Hub names get ``docker.io`` and ``library/``.

    Never raises: a reference that is not well formed still yields its best reading, since
    signatures must see it either way.
    """
    rest = ref.strip().lower()
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = DEFAULT_REGISTRY, rest
    if registry in {"index.docker.io", "registry-1.docker.io"}:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)


def digest_of(image_id: str | None) -> str | None:
    """The ``sha256:`` digest in a runtime's image ID, else None.

    The kubelet reports ``status.containerStatuses[].imageID`` as ``repo@sha256:...``,
    ``docker-pullable://repo@sha256:...`` or a bare ``sha256:...``. The one reader of it: the
    agent puts the digest in its detections and exemption checks, the operator quarantines it.
    """
    found = (image_id or "").rpartition("@")[2]
    return found if found.startswith("sha256:") else None


def _glob(text: str, star: str) -> str:
    """An RE2 expression for one glob piece: ``*`` becomes ``star``, the rest is literal."""
    return "".join(star if c == "*" else (c if c.isalnum() else f"\\{c}") for c in text)


@dataclass(frozen=True, slots=True)
class NamePattern:
    """A pattern over image names whose registry host and repository are matched separately.

    The text is read the way the runtime reads a reference (Docker Hub's ``docker.io`` and
    ``library/`` filled in), then each side is matched on its own, so no wildcard can reach
    across the boundary: ``*.dkr.ecr.us-east-1.amazonaws.com/*`` never covers
    ``attacker.example/x.dkr.ecr.us-east-1.amazonaws.com/miner``. In the host ``*`` stays
    within one DNS label (never ``.``, ``:`` or ``/``); in the repository ``*`` stays within one
    path segment and a whole segment ``**`` stands for one or more segments. Compiled for RE2,
    so matching is linear in the name whatever the pattern.
    """

    text: str
    registry: str
    repository: str
    _host: re2._Regexp = field(repr=False, compare=False)
    _path: re2._Regexp = field(repr=False, compare=False)

    def matches(self, ref: ImageRef) -> bool:
        """Whether ``ref``'s registry and repository both match."""
        return bool(self._host.fullmatch(ref.registry) and self._path.fullmatch(ref.repository))


def name_pattern(text: str) -> NamePattern:
    """Compile an image-name pattern; ValueError says what is wrong with it."""
    parsed = parse(text)
    if parsed.tag is not None or parsed.digest is not None:
        raise ValueError("a name pattern has no tag or digest")
    host, repository = parsed.registry, parsed.repository
    if "**" in host:
        raise ValueError("** is for repository segments, not the registry host")
    if not any(c.isalnum() for c in host.replace("*", "")):
        raise ValueError(f"registry {host!r} would match any registry")
    segments = repository.split("/")
    if any(not segment for segment in segments):
        raise ValueError("empty path segment")
    if any("**" in segment and segment != "**" for segment in segments):
        raise ValueError("** must be a whole path segment")
    path = "/".join(
        "[^/]+(?:/[^/]+)*" if segment == "**" else _glob(segment, "[^/]*") for segment in segments
    )
    return NamePattern(
        text=text,
        registry=host,
        repository=repository,
        _host=re2.compile(_glob(host, "[^./:]*")),
        _path=re2.compile(path),
    )

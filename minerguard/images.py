"""Container image references, parsed the way the container runtime does."""

from __future__ import annotations

from dataclasses import dataclass

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

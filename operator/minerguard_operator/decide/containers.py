"""What a pod's own object says about one of its containers: the image and its digest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minerguard import images

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def _status(pod: Mapping[str, Any], container: str | None) -> Mapping[str, Any]:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for item in status.get(key) or ():
            if isinstance(item, Mapping) and (container is None or item.get("name") == container):
                return item
    return {}


def digest(pod: Mapping[str, Any], container: str | None) -> str | None:
    """The ``sha256:`` digest the kubelet reports the container running (the first if None)."""
    return images.digest_of(str(_status(pod, container).get("imageID") or ""))


def image(pod: Mapping[str, Any], container: str | None) -> str | None:
    """The image reference in the pod's spec for the container (the first if None)."""
    spec = pod.get("spec") or {}
    for key in CONTAINER_LISTS:
        for item in spec.get(key) or ():
            if isinstance(item, Mapping) and (container is None or item.get("name") == container):
                reference = item.get("image")
                return str(reference) if reference else None
    return None

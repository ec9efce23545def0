"""Pod lookup by UID: who a cgroup belongs to, as far as the API knows.

Standalone mode has no API: ``NoPods`` answers None and detections carry the pod UID and
container ID parsed from the cgroup path only.
"""

from __future__ import annotations

from typing import Protocol

from node_agent.report import PodRef


class PodLookup(Protocol):
    """Maps a pod UID (and container ID) to the pod's namespace, name, container and image."""

    def lookup(self, pod_uid: str | None, container_id: str | None) -> PodRef | None:
        """The pod, or None when unknown."""
        ...


class NoPods:
    """The lookup of standalone mode: nothing is known beyond the cgroup path."""

    def lookup(self, pod_uid: str | None, container_id: str | None) -> PodRef | None:
        """Always None."""
        return None

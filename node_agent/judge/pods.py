"""Pod lookup by UID: who a cgroup belongs to, as far as the API knows.

Without a cluster there is no API: ``NoPods`` answers None and detections carry the pod UID and
container ID parsed from the cgroup path only. In-cluster, ``ClusterPods`` answers from the
node's pod cache (list+watch in ``minerguard.kube.pods``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from minerguard import images
from minerguard.api import detection
from minerguard.cache import BoundedCache
from minerguard.kube import pods as kube_pods
from node_agent.records import PodRef


class PodLookup(Protocol):
    """Maps a pod UID (and container ID) to the pod's namespace, name, container and image."""

    def lookup(self, pod_uid: str | None, container_id: str | None) -> PodRef | None:
        """The pod, or None when unknown."""
        ...


class NoPods:
    """The lookup without a cluster: nothing is known beyond the cgroup path."""

    def lookup(self, pod_uid: str | None, container_id: str | None) -> PodRef | None:
        """Always None."""
        return None


class ClusterPods:
    """The lookup of in-cluster mode: this node's pods from ``minerguard.kube.pods.PodCache``.

    A container starts only after the kubelet saw its pod through the API, so the agent's own
    watch has nearly always delivered it too; when not, ``lookup`` waits up to ``wait`` seconds
    once per unknown UID (then remembers the miss for ``miss_ttl``), so a storm of execs in a
    pod the cache never learns about cannot stall the agent.
    """

    def __init__(
        self,
        cache: kube_pods.PodCache,
        *,
        wait: float = 0.5,
        miss_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache = cache
        self._wait = wait
        self._misses: BoundedCache[str, None] = BoundedCache(4096, ttl=miss_ttl, clock=clock)
        self.unknown = 0

    def lookup(self, pod_uid: str | None, container_id: str | None) -> PodRef | None:
        """The pod and container, or None when the API does not know the UID (yet)."""
        if pod_uid is None:
            return None
        pod = self._cache.get(pod_uid)
        if pod is None:
            pod = self._wait_for(pod_uid)
            if pod is None:
                self.unknown += 1
                return None
        container = pod.container(container_id)
        image_id = container.image_id if container else None
        owner = None
        if pod.owner is not None:
            owner = detection.OwnerReference(
                api_version=pod.owner.api_version,
                kind=pod.owner.kind,
                name=pod.owner.name,
                uid=pod.owner.uid,
            )
        return PodRef(
            namespace=pod.namespace,
            name=pod.name,
            uid=pod.uid,
            container=container.name if container else None,
            image=container.image if container else None,
            image_digest=images.digest_of(image_id),
            node=pod.node,
            labels=pod.labels,
            namespace_labels=self._cache.namespace_labels(pod.namespace),
            owner=owner,
        )

    def _wait_for(self, pod_uid: str) -> kube_pods.PodInfo | None:
        if pod_uid in self._misses or self._wait <= 0:
            return None
        pod = self._cache.wait_for(pod_uid, self._wait)
        if pod is None:
            self._misses.put(pod_uid, None)
        return pod

"""The pods on one node and the labels of every namespace, kept current by list+watch.

The node agent asks "which pod is UID x, which container is ID y" on its hot path, so answers
come from an in-memory cache keyed by pod UID, never from an API call. Two background threads
(pods filtered by ``spec.nodeName``, namespaces for ``namespaceSelector``) each list, then
watch from the list's resourceVersion; any failure keeps the cache as it is (an outage must not
make every pod unknown) and relists after a backoff, pruning what disappeared meanwhile. The
node filter is applied again on every object received, since a field selector is advisory for
emulators and old API servers alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from minerguard.kube import listwatch, resources

log = logging.getLogger(__name__)

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container of a pod as the API describes it."""

    name: str
    image: str | None = None
    image_id: str | None = None
    container_id: str | None = None


@dataclass(frozen=True, slots=True)
class OwnerInfo:
    """The pod's controlling owner reference."""

    kind: str
    name: str
    uid: str | None = None
    api_version: str | None = None


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the agent needs to know about one pod."""

    namespace: str
    name: str
    uid: str
    node: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    containers: tuple[ContainerInfo, ...] = ()
    owner: OwnerInfo | None = None
    mirror_of: str | None = None
    """A static pod's config hash: the UID its cgroups carry (the mirror pod's UID differs)."""

    def container(self, container_id: str | None) -> ContainerInfo | None:
        """The container with this runtime ID; the only container when the ID is unknown."""
        if container_id:
            for item in self.containers:
                if item.container_id == container_id:
                    return item
        named = {c.name for c in self.containers}
        if len(named) == 1:
            return self.containers[0]
        return None


def _strip_runtime(container_id: str | None) -> str | None:
    """``containerd://abc`` → ``abc`` (the form cgroup paths carry)."""
    if not container_id:
        return None
    return container_id.partition("://")[2] or container_id


def parse_pod(raw: Mapping[str, Any]) -> PodInfo | None:
    """A PodInfo from a pod object (dict as the API sends it); None when it has no UID."""
    meta = raw.get("metadata") or {}
    uid = meta.get("uid")
    if not uid:
        return None
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    images: dict[str, str | None] = {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for item in spec.get(key) or []:
            if isinstance(item, dict) and item.get("name"):
                images[str(item["name"])] = item.get("image")
    containers: list[ContainerInfo] = []
    reported: set[str] = set()
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for item in status.get(key) or []:
            if not isinstance(item, dict) or not item.get("name"):
                continue
            name = str(item["name"])
            reported.add(name)
            containers.append(
                ContainerInfo(
                    name=name,
                    image=images.get(name) or item.get("image"),
                    image_id=item.get("imageID") or None,
                    container_id=_strip_runtime(item.get("containerID")),
                )
            )
    containers.extend(ContainerInfo(n, i) for n, i in images.items() if n not in reported)
    owner = None
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") and ref.get("kind"):
            owner = OwnerInfo(
                kind=str(ref["kind"]),
                name=str(ref.get("name", "")),
                uid=ref.get("uid"),
                api_version=ref.get("apiVersion"),
            )
            break
    return PodInfo(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        uid=str(uid),
        node=spec.get("nodeName"),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        containers=tuple(containers),
        owner=owner,
        mirror_of=(meta.get("annotations") or {}).get(MIRROR_ANNOTATION),
    )


def _keys(pod: PodInfo) -> tuple[str, ...]:
    return (pod.uid, pod.mirror_of) if pod.mirror_of else (pod.uid,)


class PodCache:
    """Pods scheduled to ``node`` by UID, and namespace labels by name; read without locks.

    Readers see immutable snapshots (dicts replaced, never mutated in place), so the agent's
    hot path takes no lock.
    """

    def __init__(
        self,
        client_factory: Callable[[], client.ApiClient],
        node: str,
        *,
        watch_timeout: int = 300,
        namespaces: bool = True,
    ) -> None:
        self.node = node
        self._stop = threading.Event()
        self._pods: dict[str, PodInfo] = {}
        self._namespaces: dict[str, dict[str, str]] = {}
        self._changed = threading.Condition()
        self._pod_watch = listwatch.ListWatch(
            "pods",
            factory=client_factory,
            url_path=resources.path("v1", "pods"),
            query={"fieldSelector": f"spec.nodeName={node}"},
            replace=self._replace_pods,
            apply=self._apply_pod,
            watch_timeout=watch_timeout,
            stop=self._stop,
        )
        self._ns_watch: listwatch.ListWatch | None = None
        if namespaces:
            self._ns_watch = listwatch.ListWatch(
                "namespaces",
                factory=client_factory,
                url_path=resources.path("v1", "namespaces"),
                query={},
                replace=self._replace_namespaces,
                apply=self._apply_namespace,
                watch_timeout=watch_timeout,
                stop=self._stop,
            )

    def start(self) -> PodCache:
        """Start the background list+watch threads; returns self."""
        self._pod_watch.thread.start()
        if self._ns_watch is not None:
            self._ns_watch.thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the threads to end (they are daemons; a blocked watch ends with its timeout)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._pod_watch.interrupt()
        if self._ns_watch is not None:
            self._ns_watch.interrupt()
        self._pod_watch.thread.join(timeout)
        if self._ns_watch is not None:
            self._ns_watch.thread.join(timeout)

    @property
    def synced(self) -> threading.Event:
        """Set once the first pod list succeeded."""
        return self._pod_watch.synced

    @property
    def failures(self) -> int:
        """Failed list/watch attempts (pods and namespaces)."""
        ns = self._ns_watch.failures if self._ns_watch is not None else 0
        return self._pod_watch.failures + ns

    def __len__(self) -> int:
        return len({p.uid for p in self._pods.values()})

    def get(self, uid: str) -> PodInfo | None:
        """The pod with this UID, if it is on this node and known."""
        return self._pods.get(uid)

    def find(self, namespace: str, name: str) -> PodInfo | None:
        """A pod on this node by namespace and name."""
        for pod in list(self._pods.values()):
            if pod.namespace == namespace and pod.name == name:
                return pod
        return None

    def wait_for(self, uid: str, timeout: float) -> PodInfo | None:
        """The pod, waiting up to ``timeout`` for the watch to deliver it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (pod := self._pods.get(uid)) is None and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
        return pod

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """The namespace's labels (empty when unknown)."""
        return self._namespaces.get(namespace, {})

    def _mine(self, pod: PodInfo) -> bool:
        return pod.node == self.node

    def _replace_pods(self, items: list[dict[str, Any]]) -> None:
        fresh: dict[str, PodInfo] = {}
        for raw in items:
            pod = parse_pod(raw)
            if pod is not None and self._mine(pod):
                fresh.update(dict.fromkeys(_keys(pod), pod))
        with self._changed:
            self._pods = fresh
            self._changed.notify_all()

    def _apply_pod(self, event_type: str, raw: dict[str, Any]) -> None:
        pod = parse_pod(raw)
        if pod is None:
            return
        pods = dict(self._pods)
        for key in _keys(pod):
            if event_type == "DELETED" or not self._mine(pod):
                pods.pop(key, None)
            else:
                pods[key] = pod
        with self._changed:
            self._pods = pods
            self._changed.notify_all()

    def _replace_namespaces(self, items: list[dict[str, Any]]) -> None:
        fresh: dict[str, dict[str, str]] = {}
        for raw in items:
            meta = raw.get("metadata") or {}
            if meta.get("name"):
                fresh[str(meta["name"])] = {
                    str(k): str(v) for k, v in (meta.get("labels") or {}).items()
                }
        self._namespaces = fresh

    def _apply_namespace(self, event_type: str, raw: dict[str, Any]) -> None:
        meta = raw.get("metadata") or {}
        name = meta.get("name")
        if not name:
            return
        namespaces = dict(self._namespaces)
        if event_type == "DELETED":
            namespaces.pop(str(name), None)
        else:
            namespaces[str(name)] = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        self._namespaces = namespaces

"""Map a cgroup path to the Kubernetes pod and container that own it.

kubelet names cgroups in one of two ways, and runtimes add their own prefixes:

- cgroupfs driver: ``.../kubepods/burstable/pod<uid>/<container-id>`` (Guaranteed pods sit
  directly under ``kubepods``);
- systemd driver: ``.../kubepods.slice/kubepods-burstable.slice/
  kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope``, with
  ``crio-<id>.scope`` and ``docker-<id>.scope`` for the other runtimes.

Anything may come before ``kubepods`` (kind and k3s nest the node in a container, runc nests
relative paths under its own cgroup), so the parser looks for the shape, not a fixed root.
A path without a pod is a host process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from node_agent.kernel.procfs import CgroupLine

QOS_CLASSES = ("burstable", "besteffort")
_SYSTEMD_POD = re.compile(
    r"^(?:[a-z0-9]+-)*kubepods(?:-(burstable|besteffort))?-pod([0-9a-fA-F_]{32,36})\.slice$"
)
_SYSTEMD_QOS = re.compile(r"^(?:[a-z0-9]+-)*kubepods-(burstable|besteffort)\.slice$")
_CGROUPFS_POD = re.compile(r"^pod([0-9a-fA-F-]{32,36})$")
_SCOPE = re.compile(r"^(cri-containerd|crio|docker|containerd)-([0-9a-fA-F]{12,64})\.scope$")
_CRIO_PLAIN = re.compile(r"^crio-([0-9a-fA-F]{12,64})$")
_BARE_ID = re.compile(r"^[0-9a-fA-F]{12,64}$")
_RUNTIMES = {"cri-containerd": "containerd", "containerd": "containerd"}


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who owns a cgroup: pod UID, container ID and QoS class, or nothing for the host."""

    cgroup_path: str
    pod_uid: str | None = None
    container_id: str | None = None
    qos: str | None = None
    runtime: str | None = None

    @property
    def in_pod(self) -> bool:
        """Whether the cgroup belongs to a Kubernetes pod."""
        return self.pod_uid is not None

    @property
    def key(self) -> str:
        """A stable key for per-container state: the container ID, else the path."""
        if self.pod_uid is not None and self.container_id is not None:
            return f"{self.pod_uid}/{self.container_id}"
        return self.cgroup_path


def _container(segment: str) -> tuple[str, str | None] | None:
    scope = _SCOPE.match(segment)
    if scope:
        runtime = _RUNTIMES.get(scope.group(1), scope.group(1))
        return scope.group(2).lower(), runtime
    crio = _CRIO_PLAIN.match(segment)
    if crio:
        return crio.group(1).lower(), "crio"
    if _BARE_ID.match(segment):
        return segment.lower(), None
    return None


def attribute(path: str) -> Attribution:
    """Attribute one cgroup path; host paths and partial matches yield what they name."""
    segments = [s for s in path.split("/") if s]
    marker = -1
    for index, segment in enumerate(segments):
        if segment == "kubepods" or segment.endswith("kubepods.slice"):
            marker = index
            break
    if marker < 0:
        return Attribution(cgroup_path=path)
    qos: str | None = None
    pod_uid: str | None = None
    container: tuple[str, str | None] | None = None
    for segment in segments[marker + 1 :]:
        if pod_uid is None:
            if segment in QOS_CLASSES:
                qos = segment
                continue
            systemd_qos = _SYSTEMD_QOS.match(segment)
            if systemd_qos:
                qos = systemd_qos.group(1)
                continue
            systemd_pod = _SYSTEMD_POD.match(segment)
            if systemd_pod:
                qos = systemd_pod.group(1) or qos
                pod_uid = systemd_pod.group(2).replace("_", "-").lower()
                continue
            cgroupfs_pod = _CGROUPFS_POD.match(segment)
            if cgroupfs_pod:
                pod_uid = cgroupfs_pod.group(1).lower()
                continue
            break
        container = _container(segment)
        break
    if pod_uid is None:
        return Attribution(cgroup_path=path)
    return Attribution(
        cgroup_path=path,
        pod_uid=pod_uid,
        container_id=container[0] if container else None,
        qos=qos or "guaranteed",
        runtime=container[1] if container else None,
    )


def attribute_lines(lines: Iterable[CgroupLine]) -> Attribution:
    """Attribute a process from its /proc/PID/cgroup lines.

    The v2 line wins when it names a pod; otherwise the first v1 hierarchy that does. On
    hybrid hosts the memory controller may carry a different prefix than cpu, which the
    shape-based parser ignores.
    """
    ordered = sorted(lines, key=lambda line: (not line.unified, line.hierarchy))
    fallback: Attribution | None = None
    for line in ordered:
        found = attribute(line.path)
        if found.in_pod:
            return found
        if fallback is None:
            fallback = found
    return fallback or Attribution(cgroup_path="/")

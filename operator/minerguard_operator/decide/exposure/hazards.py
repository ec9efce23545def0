"""What in the pod's own spec reaches the node: runtime sockets, privilege, host namespaces."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping
from typing import Any

from minerguard.api.investigation import EntryPoint, Severity
from minerguard_operator.decide.exposure.fields import (
    as_list,
    as_map,
    as_str,
    as_strs,
    few,
    ref_of,
    where_of,
)

BASELINE = "pod-security.kubernetes.io/enforce=baseline"
"""The Pod Security label whose level refuses host namespaces, privileged, hostPath, hostPort."""

RUNTIME_SOCKETS = tuple(
    prefix + socket
    for socket in (
        "/docker.sock",
        "/containerd/containerd.sock",
        "/crio/crio.sock",
        "/cri-dockerd.sock",
        "/k3s/containerd/containerd.sock",
        "/podman/podman.sock",
        "/dockershim.sock",
    )
    for prefix in ("/run", "/var/run")
)
"""Container runtime sockets, under both spellings (/var/run is usually a link to /run, but a
host mount of /var/run or /var does not follow a link the way the node does)."""

_CONTAINER_FIELDS = (
    ("initContainers", "init container"),
    ("containers", "container"),
    ("ephemeralContainers", "ephemeral container"),
)
DANGEROUS_CAPABILITIES = {
    "ALL": Severity.HIGH,
    "SYS_ADMIN": Severity.HIGH,
    "SYS_MODULE": Severity.HIGH,
    "SYS_PTRACE": Severity.MEDIUM,
    "SYS_RAWIO": Severity.MEDIUM,
    "DAC_READ_SEARCH": Severity.MEDIUM,
    "BPF": Severity.MEDIUM,
}
"""Added capabilities that reach past the container: mount, load modules, read host files."""


def _normal(path: str) -> str:
    return posixpath.normpath(re.sub("/+", "/", path))


def _socket_under(path: str) -> str | None:
    """The runtime socket a host path is, or holds; None when it reaches none."""
    prefix = path.rstrip("/") + "/"
    for socket in RUNTIME_SOCKETS:
        if socket == path or socket.startswith(prefix):
            return socket
    return None


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for field, what in _CONTAINER_FIELDS:
        for container in as_list(spec.get(field)):
            if isinstance(container, Mapping):
                yield what, as_str(container.get("name")) or "?", container


def _socket_mounts(pod: Mapping[str, Any]) -> list[EntryPoint]:
    spec = as_map(pod.get("spec"))
    host_paths = {
        as_str(v.get("name")): as_str(as_map(v.get("hostPath")).get("path"))
        for v in map(as_map, as_list(spec.get("volumes")))
    }
    users: dict[tuple[str, str, str], list[str]] = {}
    for what, name, container in _containers(spec):
        for mount in map(as_map, as_list(container.get("volumeMounts"))):
            volume = as_str(mount.get("name"))
            path = host_paths.get(volume) if volume else None
            if not path or not path.startswith("/"):
                continue
            sub = as_str(mount.get("subPath"))  # subPathExpr is expanded on the node: judged whole
            landed = _normal(posixpath.join(path, sub.lstrip("/")) if sub else path)
            socket = _socket_under(landed)
            if socket is not None:
                users.setdefault((str(volume), landed, socket), []).append(f"{what} {name}")
    found = []
    for (volume, landed, socket), containers in users.items():
        reaches = "is" if landed == socket else "holds"
        found.append(
            EntryPoint(
                kind="RuntimeSocket",
                name=f"{ref_of(pod)}:{volume}",
                detail=(
                    f"hostPath volume {volume} ({landed}) {reaches} the container runtime socket"
                    f" {socket}, mounted by {few(containers)}: whoever runs there can start any"
                    " container on the node, privileged"
                ),
                severity=Severity.HIGH,
                remedy=(
                    f"Remove the hostPath volume {volume} from the workload. An agent that truly"
                    " needs the socket belongs in a namespace of its own; label application"
                    f" namespaces {BASELINE} (it refuses hostPath volumes)"
                ),
            )
        )
    return found


def _capabilities(container: Mapping[str, Any]) -> list[str]:
    added = as_strs(as_map(as_map(container.get("securityContext")).get("capabilities")).get("add"))
    names = [cap.upper().removeprefix("CAP_") for cap in added]
    return [cap for cap in dict.fromkeys(names) if cap in DANGEROUS_CAPABILITIES]


def pod_hazards(pod: Mapping[str, Any]) -> list[EntryPoint]:
    """What in the pod's own spec reaches the node: runtime sockets, privilege, host namespaces.

    Every container counts, init and ephemeral ones too (``kubectl debug`` adds the latter to a
    running pod). A host mount is judged by where it lands (``subPath`` included): ``/``,
    ``/run`` or ``/run/containerd`` hold the socket as surely as the socket itself.
    """
    spec = as_map(pod.get("spec"))
    ref = ref_of(pod)
    namespace = where_of(pod)[0] or "NAMESPACE"
    label = f"kubectl label namespace {namespace} {BASELINE}"
    found = _socket_mounts(pod)
    for what, name, container in _containers(spec):
        context = as_map(container.get("securityContext"))
        if context.get("privileged") is True:
            found.append(
                EntryPoint(
                    kind="Privileged",
                    name=f"{ref}:{name}",
                    detail=(
                        f"{what} {name} runs privileged: every device and capability of the node;"
                        " the host's filesystem is one mount away"
                    ),
                    severity=Severity.HIGH,
                    remedy=(
                        f"Drop securityContext.privileged from {what} {name}"
                        + (
                            "; restrict who may update pods/ephemeralcontainers (kubectl debug)"
                            if what.startswith("ephemeral")
                            else ""
                        )
                        + f"; {label}"
                    ),
                )
            )
            continue  # privileged already holds every capability
        caps = _capabilities(container)
        if caps:
            escalation = context.get("allowPrivilegeEscalation")
            state = str(escalation).lower() if isinstance(escalation, bool) else "not set (true)"
            worst = min((DANGEROUS_CAPABILITIES[c] for c in caps), key=list(Severity).index)
            found.append(
                EntryPoint(
                    kind="Capabilities",
                    name=f"{ref}:{name}",
                    detail=(
                        f"{what} {name} adds {', '.join(caps)} (allowPrivilegeEscalation {state}):"
                        " enough to mount host filesystems or reach into other processes"
                    ),
                    severity=worst,
                    remedy=(
                        f"Remove {', '.join(caps)} from securityContext.capabilities.add of {name}"
                        f" and set allowPrivilegeEscalation: false; {label}"
                    ),
                )
            )
    for field, kind, severity, what in (
        ("hostPID", "HostPID", Severity.HIGH, "sees and signals every process of the node"),
        (
            "hostNetwork",
            "HostNetwork",
            Severity.MEDIUM,
            "shares the node's network: its ports, its addresses, no NetworkPolicy",
        ),
        ("hostIPC", "HostIPC", Severity.MEDIUM, "shares the node's IPC namespace (shared memory)"),
    ):
        if spec.get(field) is True:
            found.append(
                EntryPoint(
                    kind=kind,
                    name=ref,
                    detail=f"the pod sets {field}: it {what}",
                    severity=severity,
                    remedy=f"Set spec.{field}: false in the workload; {label}",
                )
            )
    host_ports = [
        f"{name}:{port.get('hostPort')}/{as_str(port.get('protocol')) or 'TCP'}"
        for _, name, container in _containers(spec)
        for port in map(as_map, as_list(container.get("ports")))
        if isinstance(port.get("hostPort"), int) and port.get("hostPort")
    ]
    if host_ports and spec.get("hostNetwork") is not True:
        found.append(
            EntryPoint(
                kind="HostPort",
                name=ref,
                detail=f"the node forwards its own port(s) {few(host_ports)} to the pod",
                severity=Severity.MEDIUM,
                remedy=f"Remove hostPort from the container ports (use a Service); {label}",
            )
        )
    return found

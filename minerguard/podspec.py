"""Read what each container of a Pod or workload will run, by Kubernetes' own rules.

Pod ``command`` replaces the image Entrypoint and drops its Cmd; ``args`` alone keep the
Entrypoint and replace the Cmd; neither keeps both. ``$(VAR)`` references expand from the
container's environment (image env first, pod env over it); ``$$(VAR)`` is a literal.

A container also runs what its exec probes and lifecycle hooks declare (:data:`EXEC_FIELDS`):
the kubelet has the runtime exec that argv in the container as written, with no shell and no
``$(VAR)`` expansion, in the container's environment. Each is an :class:`Exec` on its
container, judged like a pod-set command.

Values can come from elsewhere: ``env[].valueFrom`` and ``envFrom`` name ConfigMap and Secret
keys, and ``volumeMounts`` put their keys in files. They are read here as :class:`Source` and
:class:`Mount` references; :mod:`minerguard.references` resolves them against the objects
(the webhook's reads, the documents given to ``scan``) into a container whose ``env`` and
``files`` are what the process will see.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from minerguard.errors import UnsupportedObjectError

POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
"""Where each kind keeps the pod spec that its pods are made from."""

EXEC_FIELDS: tuple[tuple[str, ...], ...] = (
    ("livenessProbe",),
    ("readinessProbe",),
    ("startupProbe",),
    ("lifecycle", "postStart"),
    ("lifecycle", "preStop"),
)
"""Where a container declares a handler whose ``exec.command`` the kubelet runs in it.

Read for every kind of container: the API server allows probes on regular and sidecar init
containers (``restartPolicy: Always``), hooks on those too, and refuses the rest, so judging
whatever is declared covers all the API allows.
"""

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*+)\)")


class ContainerKind(StrEnum):
    """Where in the pod spec a container is declared."""

    CONTAINER = "containers"
    INIT = "initContainers"
    EPHEMERAL = "ephemeralContainers"


@dataclass(frozen=True, slots=True)
class Exec:
    """An exec probe or lifecycle hook: ``origin`` names the field (``lifecycle.postStart``)."""

    origin: str
    command: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Source:
    """A ConfigMap or Secret an env var (``key`` set) or ``envFrom`` (``key`` None) reads."""

    kind: str  # "ConfigMap" | "Secret"
    name: str
    key: str | None = None
    optional: bool = False
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Mount:
    """A ``volumeMounts`` entry: which volume, where, and the part of it (``subPath``)."""

    volume: str
    path: str
    sub_path: str = ""
    sub_path_expr: str = ""


@dataclass(frozen=True, slots=True)
class Container:
    """One container as declared: what the pod says, before the image fills the gaps.

    ``value_from`` pairs an index into ``env`` with the key it reads (its value there is
    empty until resolved); ``files`` holds, once resolved, the mounted files the command line
    names (path, text).
    """

    name: str
    kind: ContainerKind
    image: str
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    env: tuple[tuple[str, str], ...]
    execs: tuple[Exec, ...] = ()
    value_from: tuple[tuple[int, Source], ...] = ()
    env_from: tuple[Source, ...] = ()
    mounts: tuple[Mount, ...] = ()
    working_dir: str = ""
    files: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Values resolved from Secrets: judged, never shown (:func:`minerguard.references.redact`)."""

    @property
    def references(self) -> bool:
        """Whether anything this container sees comes from a ConfigMap or Secret."""
        return bool(self.value_from or self.env_from or self.mounts)


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image's config that decide what runs."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class PodTemplate:
    """The pod part of an object: labels and containers."""

    labels: Mapping[str, str]
    containers: tuple[Container, ...]
    service_account: str | None
    image_pull_secrets: tuple[str, ...]


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return (str(value),)
    return tuple(str(item) for item in value)


def _env(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        return ()
    pairs = []
    for item in value:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            literal = item.get("value")
            pairs.append((item["name"], literal if isinstance(literal, str) else ""))
    return tuple(pairs)


_KEY_REFS = (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret"))
FIELD = "Field"
"""The kind of a :class:`Source` that reads the pod's own metadata (``fieldRef``)."""
_ALL_REFS = (("configMapRef", "ConfigMap"), ("secretRef", "Secret"))


def _value_from(value: Any) -> tuple[tuple[int, Source], ...]:
    if not isinstance(value, list):
        return ()
    found = []
    index = 0
    for item in value:
        if not (isinstance(item, Mapping) and isinstance(item.get("name"), str)):
            continue  # _env skips it too: indexes stay aligned
        source = item.get("valueFrom")
        source = source if isinstance(source, Mapping) else {}
        for ref_field, kind in _KEY_REFS:
            ref = source.get(ref_field)
            if isinstance(ref, Mapping) and isinstance(ref.get("key"), str):
                found.append((index, _source(kind, ref, str(ref["key"]))))
        field_ref = source.get("fieldRef")
        if isinstance(field_ref, Mapping) and isinstance(field_ref.get("fieldPath"), str):
            found.append((index, Source(FIELD, field_ref["fieldPath"])))
        index += 1
    return tuple(found)


def _source(kind: str, ref: Mapping[str, Any], key: str | None, prefix: Any = "") -> Source:
    return Source(
        kind,
        str(ref.get("name") or ""),
        key,
        ref.get("optional") is True,
        prefix if isinstance(prefix, str) else "",
    )


def _env_from(value: Any) -> tuple[Source, ...]:
    found = []
    for item in value if isinstance(value, list) else ():
        for ref_field, kind in _ALL_REFS if isinstance(item, Mapping) else ():
            ref = item.get(ref_field)
            if isinstance(ref, Mapping):
                found.append(_source(kind, ref, None, item.get("prefix")))
    return tuple(found)


def _mounts(value: Any) -> tuple[Mount, ...]:
    found = []
    for item in value if isinstance(value, list) else ():
        if isinstance(item, Mapping) and isinstance(item.get("mountPath"), str):
            sub, expr = item.get("subPath"), item.get("subPathExpr")
            found.append(
                Mount(
                    str(item.get("name") or ""),
                    item["mountPath"],
                    sub if isinstance(sub, str) else "",
                    expr if isinstance(expr, str) else "",
                )
            )
    return tuple(found)


def _execs(raw: Mapping[str, Any]) -> tuple[Exec, ...]:
    found = []
    for path in EXEC_FIELDS:
        node: Any = raw
        for key in (*path, "exec"):
            node = node.get(key) if isinstance(node, Mapping) else None
        command = _strings(node.get("command")) if isinstance(node, Mapping) else None
        if command:
            found.append(Exec(".".join(path), command))
    return tuple(found)


def container(raw: Mapping[str, Any], kind: ContainerKind) -> Container:
    """Read one container; tolerant of missing or mistyped fields (the API server checks)."""
    return Container(
        name=str(raw.get("name", "")),
        kind=kind,
        image=str(raw.get("image", "")),
        command=_strings(raw.get("command")),
        args=_strings(raw.get("args")),
        env=_env(raw.get("env")),
        execs=_execs(raw),
        value_from=_value_from(raw.get("env")),
        env_from=_env_from(raw.get("envFrom")),
        mounts=_mounts(raw.get("volumeMounts")),
        working_dir=str(raw.get("workingDir") or ""),
    )


def pod_spec(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, str]]:
    """The pod spec and pod labels of a Pod or workload; raises for other kinds."""
    kind = obj.get("kind")
    path = POD_TEMPLATE_PATHS.get(kind) if isinstance(kind, str) else None
    if path is None:
        raise UnsupportedObjectError(f"kind {kind!r} has no pod template")
    node: Any = obj
    labels: Any = obj.get("metadata", {}).get("labels") if kind == "Pod" else None
    for index, key in enumerate(path):
        if key == "spec" and index == len(path) - 1 and kind != "Pod":
            labels = node.get("metadata", {}).get("labels") if isinstance(node, Mapping) else None
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        raise UnsupportedObjectError(f"{kind} has no {'.'.join(path)}")
    return node, labels if isinstance(labels, Mapping) else {}


def pod_metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The metadata the pods of ``obj`` get (a Pod's own, a workload's template's); {} else.

    What ``fieldRef`` and ``downwardAPI`` volumes read: an annotation can carry a value.
    """
    kind = obj.get("kind")
    path = POD_TEMPLATE_PATHS.get(kind) if isinstance(kind, str) else None
    node: Any = obj
    for key in (*path[:-1], "metadata") if path is not None else ():
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def template(obj: Mapping[str, Any]) -> PodTemplate:
    """All containers (regular, init, ephemeral) of a Pod or workload."""
    spec, labels = pod_spec(obj)
    found: list[Container] = []
    for kind in ContainerKind:
        items = spec.get(kind.value)
        if isinstance(items, list):
            found.extend(container(c, kind) for c in items if isinstance(c, Mapping))
    secrets = spec.get("imagePullSecrets")
    return PodTemplate(
        labels={str(k): str(v) for k, v in labels.items()},
        containers=tuple(found),
        service_account=spec.get("serviceAccountName") or None,
        image_pull_secrets=tuple(
            str(s["name"]) for s in secrets or () if isinstance(s, Mapping) and "name" in s
        )
        if isinstance(secrets, list)
        else (),
    )


def needs_image_config(declared: Container) -> bool:
    """Whether the image decides part of what runs (no ``command`` in the pod)."""
    return declared.command is None


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay as written."""
    if "$" not in text:
        return text

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _VAR_REF.sub(repl, text)


def effective_env(declared: Container, image: ImageConfig | None) -> tuple[tuple[str, str], ...]:
    """Image env overlaid by the pod's env.

    ``$(VAR)`` in the pod's values expands as the kubelet does: from the pod's own variables
    declared earlier, never from the image's.
    """
    declared_so_far: dict[str, str] = {}
    for name, value in declared.env:
        declared_so_far[name] = expand(value, declared_so_far)
    merged = dict(image.env) if image else {}
    merged.update(declared_so_far)
    return tuple(merged.items())


def effective_argv(declared: Container, image: ImageConfig | None) -> tuple[str, ...]:
    """The argv the container will start with; the image's parts are empty when unknown.

    ``$(VAR)`` expands from the pod's env only, and only in the pod's own command and args:
    the kubelet leaves the image's Entrypoint and Cmd as they are.
    """
    env = dict(effective_env(declared, None))
    command = tuple(expand(word, env) for word in declared.command or ())
    args = tuple(expand(word, env) for word in declared.args or ())
    if declared.command is not None:
        return (*command, *args)
    entrypoint = image.entrypoint if image else ()
    if declared.args is not None:
        return (*entrypoint, *args)
    return (*entrypoint, *(image.cmd if image else ()))

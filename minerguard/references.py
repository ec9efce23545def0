"""Values that come from elsewhere: ConfigMap and Secret keys, as the process will see them.

A container's environment and files can come from objects the pod only names:
``env[].valueFrom`` (``configMapKeyRef``, ``secretKeyRef``), ``envFrom`` (``configMapRef``,
``secretRef``, with ``prefix``) and volumes (``configMap``, ``secret``, ``projected``) mounted
with ``volumeMounts`` (``items`` key to path, ``subPath``). :func:`resolve` reads them through a
lookup function (the webhook's API reads, or the documents given to ``scan``) and returns the
containers with those values filled in, so the one decision (:mod:`minerguard.evaluate`)
judges them exactly as it judges literals. Pure: no I/O but ``lookup``.

The kubelet's rules, followed here (``pkg/kubelet/kubelet_pods.go``): ``envFrom`` first, in
order, later sources over earlier ones; then each ``env`` entry in order, over anything
before it; a literal ``value`` expands ``$(VAR)`` from what is defined *before* it (envFrom
included), while values read from a ConfigMap or Secret are never expanded; command and args
expand from the final environment. An ``optional`` reference whose object or key is missing is
left out; a missing required one keeps the container from starting *until it exists*, which
an attacker controls, so it is reported as not resolved, never taken as empty.

Files are judged when the command line names them: an argument that is a mounted file's path
(``-c``, ``--config=``, a script given to ``sh``/``python``, any other word), resolved against
``workingDir``; a word naming a mount's directory names its files. Mounted files nobody names
(a scanner's rule files) are not judged as what the container runs.

Secret values are judged but never shown: :func:`redact` removes them (and any signal detail
quoting part of them) from what a decision reports.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from minerguard import podspec
from minerguard.signatures import shell

MAX_FILES = 64
"""Files judged per container; more named on its command line are reported, not read."""
MAX_FILE_CHARS = 1 << 20
"""Characters judged per file: the API server's own limit on one object's size."""
MAX_VALUES = 20_000
"""``envFrom`` values copied per resolution, over every container: a pod of many containers
each taking every key of a large ConfigMap costs at most this (the engine's own budget then
decides what is examined)."""
_ENV_NAME = re.compile(r"[ -<>-~]+")
"""Names ``envFrom`` sets: any printable ASCII but ``=`` (Kubernetes 1.30's relaxed rule; older
kubelets skip more, so judging these too only ever judges more)."""
_QUOTED = re.compile(r"""(?<![A-Za-z])(?:'([^']{3,}?)'|"([^"]{3,}?)")(?![A-Za-z])""")
_WORDS = re.compile(r"[\s\"'`,;{}\[\]()=]+")
_MIN_WORD = 4
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"})
_SOURCE = frozenset({".", "source"})
SECRET_NOTE = "value from a Secret, not shown"  # noqa: S105 - a label, not a password
CONFIGMAP, SECRET = "ConfigMap", "Secret"


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An object that could not be read: ``reason`` says why (forbidden, timed out, ...).

    ``forbidden`` marks an RBAC refusal: for Secrets that is the chart's choice (reading
    Secrets is opt-in), a note rather than an unverified container.
    """

    reason: str
    forbidden: bool = False


Data = Mapping[str, str]
Lookup = Callable[[str, str, str], "Data | Unreadable | None"]
"""``(kind, namespace, name)`` to the object's keys and decoded values, an :class:`Unreadable`,
or None when the object does not exist."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A reference that could not be resolved, for one container.

    ``soft``: nothing a pod's author controls (the webhook may not read Secrets); reported,
    never refusing.
    """

    container: str
    what: str
    soft: bool = False


@dataclass(frozen=True, slots=True)
class VolumeSource:
    """One ConfigMap or Secret a volume projects: its ``items`` (key, path), or all keys."""

    kind: str
    name: str
    items: tuple[tuple[str, str], ...] | None
    optional: bool


@dataclass(frozen=True)
class Resolved:
    """Containers as the processes will see them, and what could not be read."""

    containers: tuple[podspec.Container, ...]
    problems: tuple[Problem, ...] = ()


def object_data(obj: Mapping[str, Any]) -> Data | None:
    """A ConfigMap's or Secret's keys and values as text; None for other kinds.

    ``binaryData`` and Secret ``data`` are base64; what does not decode is left out (the API
    server never stores it). ``stringData`` (write-only, in manifests given to ``scan``) wins
    over ``data`` as it does at the API server. Bytes that are not UTF-8 are judged with
    replacement characters, as a text-reading process would mostly see them.
    """
    kind = obj.get("kind")
    if kind not in (CONFIGMAP, SECRET):
        return None
    found: dict[str, str] = {}
    encoded = ("binaryData",) if kind == CONFIGMAP else ("data",)
    for field in encoded:
        values = obj.get(field)
        for key, value in values.items() if isinstance(values, Mapping) else ():
            try:
                raw = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                continue
            found[str(key)] = raw[:MAX_FILE_CHARS].decode("utf-8", "replace")
    plain = ("data",) if kind == CONFIGMAP else ("stringData",)
    for field in plain:
        values = obj.get(field)
        for key, value in values.items() if isinstance(values, Mapping) else ():
            found[str(key)] = str(value)[:MAX_FILE_CHARS]
    return found


def volumes(spec: Mapping[str, Any]) -> dict[str, tuple[VolumeSource, ...]]:
    """The pod's ConfigMap, Secret and projected volumes by name (others are left out)."""
    found: dict[str, tuple[VolumeSource, ...]] = {}
    listed = spec.get("volumes")
    for volume in listed if isinstance(listed, list) else ():
        if not isinstance(volume, Mapping) or not isinstance(volume.get("name"), str):
            continue
        sources = [_volume_source(CONFIGMAP, volume.get("configMap"), "name")]
        sources.append(_volume_source(SECRET, volume.get("secret"), "secretName"))
        sources.append(_downward(volume.get("downwardAPI")))
        projected = volume.get("projected")
        inner = projected.get("sources") if isinstance(projected, Mapping) else None
        for item in inner if isinstance(inner, list) else ():
            if isinstance(item, Mapping):
                sources.append(_volume_source(CONFIGMAP, item.get("configMap"), "name"))
                sources.append(_volume_source(SECRET, item.get("secret"), "name"))
                sources.append(_downward(item.get("downwardAPI")))
        kept = tuple(s for s in sources if s is not None)
        if kept:
            found[volume["name"]] = kept
    return found


def _downward(raw: Any) -> VolumeSource | None:
    """A downwardAPI volume (or projected source): items are (fieldPath, path)."""
    listed = raw.get("items") if isinstance(raw, Mapping) else None
    if not isinstance(listed, list):
        return None
    items = tuple(
        (str(i["fieldRef"]["fieldPath"]), str(i["path"]))
        for i in listed
        if isinstance(i, Mapping)
        and "path" in i
        and isinstance(i.get("fieldRef"), Mapping)
        and "fieldPath" in i["fieldRef"]
    )
    return VolumeSource(podspec.FIELD, "", items, True)


_FIELD_KEY = re.compile(r"metadata\.(labels|annotations)\['([^']*)'\]")


def _field(path: str, metadata: Mapping[str, Any], namespace: str) -> str | None:
    """A ``fieldRef`` value known before the pod exists; None for what only the node knows.

    Known: name, namespace, labels, annotations; not: IPs, node name, uid.
    """
    if path == "metadata.name":
        return str(metadata.get("name") or "")
    if path == "metadata.namespace":
        return namespace
    found = _FIELD_KEY.fullmatch(path)
    if found is None:
        return None
    values = metadata.get(found.group(1))
    value = values.get(found.group(2)) if isinstance(values, Mapping) else None
    return str(value)[:MAX_FILE_CHARS] if value is not None else None


def _volume_source(kind: str, raw: Any, name_field: str) -> VolumeSource | None:
    if not isinstance(raw, Mapping):
        return None
    items: tuple[tuple[str, str], ...] | None = None
    listed = raw.get("items")
    if isinstance(listed, list) and listed:
        items = tuple(
            (str(i["key"]), str(i["path"]))
            for i in listed
            if isinstance(i, Mapping) and "key" in i and "path" in i
        )
    return VolumeSource(kind, str(raw.get(name_field) or ""), items, raw.get("optional") is True)


def wanted(
    containers: Iterable[podspec.Container], spec: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """``(kind, name)`` of every object these containers read, once each, in order.

    What the webhook fetches before :func:`resolve` (volumes only when a container mounts
    them).
    """
    found: dict[tuple[str, str], None] = {}
    by_volume = volumes(spec)
    for container in containers:
        for _, source in container.value_from:
            found[(source.kind, source.name)] = None
        for source in container.env_from:
            found[(source.kind, source.name)] = None
        for mount in container.mounts:
            for vsource in by_volume.get(mount.volume, ()):
                found[(vsource.kind, vsource.name)] = None
    return [key for key in found if key[1] and key[0] != podspec.FIELD]


class _Reader:
    """One lookup per object per resolution; records problems and the secret values used."""

    def __init__(self, namespace: str, lookup: Lookup, metadata: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self.lookup = lookup
        self.metadata = metadata
        self.seen: dict[tuple[str, str], Data | Unreadable | None] = {}
        self.values = MAX_VALUES  # envFrom values copied, over every container

    def fields(self, paths: Iterable[str]) -> Data:
        """The pod's own fields the downward API would give, by fieldPath."""
        found = {path: _field(path, self.metadata, self.namespace) for path in paths}
        return {path: value for path, value in found.items() if value is not None}

    def get(self, kind: str, name: str) -> Data | Unreadable | None:
        key = (kind, name)
        if key not in self.seen:
            self.seen[key] = self.lookup(kind, self.namespace, name)
        return self.seen[key]

    def describe(self, kind: str, name: str) -> str:
        return f"{kind} {self.namespace}/{name}"


def resolve(
    containers: Sequence[podspec.Container],
    spec: Mapping[str, Any],
    namespace: str,
    lookup: Lookup,
    metadata: Mapping[str, Any] | None = None,
) -> Resolved:
    """The containers with their ConfigMap and Secret values and named files filled in.

    ``metadata``: the pods' own (:func:`minerguard.podspec.pod_metadata`), for ``fieldRef``
    and downwardAPI volumes: an annotation is as good a place for a pool as a ConfigMap.
    """
    reader = _Reader(namespace, lookup, metadata or {})
    by_volume = volumes(spec)
    done: list[podspec.Container] = []
    problems: list[Problem] = []
    for container in containers:
        if not container.references:
            done.append(container)
            continue
        found, secrets = _container(container, by_volume, reader, problems)
        done.append(replace(found, secrets=tuple(dict.fromkeys(secrets))))
    return Resolved(tuple(done), tuple(problems))


def _container(
    container: podspec.Container,
    by_volume: Mapping[str, tuple[VolumeSource, ...]],
    reader: _Reader,
    problems: list[Problem],
) -> tuple[podspec.Container, list[str]]:
    secrets: list[str] = []

    def problem(kind: str, what: str, forbidden: bool = False) -> None:
        soft = forbidden and kind == SECRET
        problems.append(Problem(container.name, what, soft))

    def read(source: podspec.Source) -> Data | None:
        found = reader.get(source.kind, source.name)
        where = reader.describe(source.kind, source.name)
        if isinstance(found, Unreadable):
            problem(source.kind, f"{where} not read ({found.reason})", found.forbidden)
            return None
        if found is None:
            if not source.optional:
                problem(source.kind, f"{where} not found")
            return None
        return found

    env: dict[str, str] = {}
    for every in container.env_from:
        data = read(every) or {}
        if len(data) > reader.values:
            where = reader.describe(every.kind, every.name)
            problem(every.kind, f"{where}: more than {MAX_VALUES} values in all; rest not read")
            data = dict(list(data.items())[: reader.values])
        reader.values -= len(data)
        for key, value in data.items():
            name = every.prefix + key
            if _ENV_NAME.fullmatch(name):
                env.pop(name, None)
                env[name] = value
                if every.kind == SECRET:
                    secrets.append(value)
    refs = dict(container.value_from)
    for index, (name, literal) in enumerate(container.env):
        source = refs.get(index)
        if source is None:
            env.pop(name, None)
            env[name] = podspec.expand(literal, env) if literal else literal
            continue
        if source.kind == podspec.FIELD:
            field = reader.fields([source.name]).get(source.name)
            if field is not None:
                env.pop(name, None)
                env[name] = field
            continue
        keyed = read(source)
        if keyed is None:
            continue
        if source.key not in keyed:
            if not source.optional:
                where = reader.describe(source.kind, source.name)
                problem(source.kind, f'{where} has no key "{source.key}"')
            continue
        env.pop(name, None)
        env[name] = keyed[source.key or ""]
        if source.kind == SECRET:
            secrets.append(env[name])
    # Values are final: "$" doubled so that podspec.effective_env's expansion keeps them so.
    final = tuple((name, value.replace("$", "$$")) for name, value in env.items())
    resolved = replace(container, env=final, value_from=(), env_from=())
    files = _files(resolved, env, by_volume, reader=reader, problem=problem, secrets=secrets)
    return replace(resolved, files=files), secrets


def _files(
    container: podspec.Container,
    env: Mapping[str, str],
    by_volume: Mapping[str, tuple[VolumeSource, ...]],
    *,
    reader: _Reader,
    problem: Callable[..., None],
    secrets: list[str],
) -> tuple[tuple[str, str], ...]:
    if not container.mounts:
        return ()  # nothing mounted: no file to find, so no command line to evaluate for one
    named = _named_paths(container)
    if not named:
        return ()
    found: dict[str, str] = {}
    for mount in container.mounts:
        root = posixpath.normpath(mount.path)
        if not any(p == root or p.startswith(root.rstrip("/") + "/") for p in named):
            continue  # nothing under this mount is named: not read at all
        sub = mount.sub_path or podspec.expand(mount.sub_path_expr, env)
        sub = posixpath.normpath(sub) if sub else ""
        for source in by_volume.get(mount.volume, ()):
            if len(found) >= MAX_FILES:
                problem(source.kind, f"more than {MAX_FILES} mounted files named; rest not read")
                return tuple(found.items())
            if source.kind == podspec.FIELD:
                data: Data | Unreadable | None = reader.fields(k for k, _ in source.items or ())
            else:
                data = reader.get(source.kind, source.name)
            where = reader.describe(source.kind, source.name)
            if isinstance(data, Unreadable):
                problem(source.kind, f"{where} not read ({data.reason})", data.forbidden)
                continue
            if data is None:
                # Even when optional: the kubelet fills the volume in once the object exists,
                # and the file this command line names is then read at the next (re)start.
                note = " (optional; the file the command line names would come from it)"
                problem(source.kind, f"{where} not found" + (note if source.optional else ""))
                continue
            listed = source.items if source.items is not None else [(k, k) for k in data]
            for key, relative in listed:
                if key not in data:
                    if source.items is not None and not source.optional:
                        problem(source.kind, f'{where} has no key "{key}"')
                    continue
                path = _mounted_at(root, posixpath.normpath(relative), sub)
                if path is None or not _is_named(path, root, named):
                    continue
                text = _judged_as(data[key][:MAX_FILE_CHARS], named.get(path, False))
                if text is None:
                    continue
                found[path] = text
                if source.kind == SECRET:
                    secrets.append(data[key])
    return tuple(found.items())


def _mounted_at(root: str, relative: str, sub: str) -> str | None:
    """Where a volume's file ``relative`` appears for a mount at ``root`` of part ``sub``."""
    if not sub:
        return posixpath.join(root, relative)
    if relative == sub:
        return root
    if relative.startswith(sub + "/"):
        return posixpath.join(root, relative[len(sub) + 1 :])
    return None


def _is_named(path: str, root: str, named: Mapping[str, bool]) -> bool:
    """A file is named by its own path, or by its mount's directory (``run-parts /scripts``)."""
    return path in named or (root in named and path != root)


def _named_paths(container: podspec.Container) -> dict[str, bool]:
    """Every path-like word of the command line, probes and hooks, normalised: is it a script?

    Words are split on white space (``sh -c`` scripts) and at ``=`` (``--config=FILE``),
    quotes stripped; relative ones are taken from ``workingDir``. A word is a script (True)
    when a shell is given it to run (``sh FILE``, ``bash -e FILE``, ``. FILE``, ``source FILE``).
    """
    env = dict(podspec.effective_env(container, None))
    argv = podspec.effective_argv(container, None)
    words: list[tuple[str, bool]] = []
    declared = (argv, *(run.command for run in container.execs))
    # Through the shell evaluator too: an encoded ``sh -c`` names its files as plainly.
    commands = [c for command in declared for c in shell.commands_of(command, env)]
    for command in commands:
        operand = _shell_operand(command)
        previous = ""
        for index, word in enumerate(command):
            for part in str(word)[:MAX_FILE_CHARS].split():
                script = index == operand or previous in _SOURCE
                words.append((part, script))
                words.extend((value, False) for value in part.split("=")[1:])
                previous = part
    named: dict[str, bool] = {}
    base = container.working_dir or "/"
    for raw, script in words:
        word = podspec.expand(raw.strip("'\";"), env)
        if not word or ("/" not in word and "." not in word):
            continue
        path = posixpath.normpath(posixpath.join(base, word))
        named[path] = named.get(path, False) or script
    return named


def _shell_operand(command: Sequence[str]) -> int | None:
    """The index of the script file a shell command runs (``sh -e FILE``), if it runs one."""
    if not command or posixpath.basename(command[0]) not in _SHELLS:
        return None
    start = 2 if posixpath.basename(command[0]) == "busybox" else 1
    for index in range(start, len(command)):
        word = command[index]
        if word.startswith("-") or word.startswith("+"):
            if "c" in word.lstrip("-+") and not word.startswith("--"):
                return None  # -c: the next word is the script's text, judged as such
            continue
        return index
    return None


def _judged_as(text: str, script: bool) -> str | None:
    """A named file as the engine should read it, or None when it is not judged.

    What a process runs or is configured by: a script (a shebang, or handed to a shell, which
    runs it whatever its first line), or a JSON object (the config format of xmrig, T-Rex,
    SRBMiner, ...). Other files a command names are data to it (a scanner's rules, a word
    list): judging their text as what the container runs would refuse every detector.
    """
    if text.startswith("#!"):
        return text
    if script:
        return "#!/bin/sh\n" + text
    return text if text.lstrip()[:1] == "{" else None


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every Secret value in it replaced."""
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 3 and value in text:
            text = text.replace(value, f"<{SECRET_NOTE}>")
    return text


def quotes_secret(detail: str, secrets: Sequence[str]) -> bool:
    """Whether a signal's detail shows part of a Secret value (compared case-blind).

    A quoted fragment (a wallet's first characters, a host) found in a value, or a word of a
    value (split where configs split: white space, quotes, JSON punctuation) found in the
    detail: either way the detail goes.
    """
    folded = [s.casefold() for s in secrets if s]
    text = detail.casefold()
    for fragment in _QUOTED.findall(detail):
        part = (fragment[0] or fragment[1]).removesuffix("...").strip().casefold()
        if part and any(part in value for value in folded):
            return True
    return any(
        len(word) >= _MIN_WORD and word in text
        for value in folded
        for word in _WORDS.split(value[:MAX_FILE_CHARS])
    )

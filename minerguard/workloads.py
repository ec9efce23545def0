"""Where each kind keeps its containers: the one table of workload kinds.

Kubernetes' own workloads keep one pod template at a fixed path
(:data:`minerguard.podspec.POD_TEMPLATE_PATHS`). Workflow engines and training operators run
pods too, and keep what those pods run in their own shapes: Argo's templates (``container``,
``script``, ``containerSet``, init containers, sidecars, inline templates of steps and DAG
tasks), Tekton's steps, sidecars and step templates (inline in runs and pipelines), Kubeflow's
replica specs. :data:`BUILTIN` holds a reader per kind, keyed by API group and kind;
:class:`WorkloadKind` adds a user's CRD by the paths to its pod templates (the chart's
``webhook.podTemplateKinds``), and :func:`find_pod_specs` finds pod-spec-shaped objects in any
object, bounded, where nobody said where to look.

Containers of a CRD are named by where they are (``template/container``,
``task/step``, ``Worker/pytorch``), so a finding says which part of the object runs the
miner. Parameters the object itself supplies (Argo's ``{{workflow.parameters.x}}`` and
``{{inputs.parameters.x}}``, Tekton's ``$(params.x)``) are substituted as the engine would,
once and bounded; a script (Argo ``script.source``, Tekton ``script``) is judged as the
script its interpreter runs. Everything here is pure and bounded in work and output.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from minerguard import podspec
from minerguard.errors import UnsupportedObjectError

MAX_CONTAINERS = 2000
"""Containers read from one object (the webhook's own per-object limit); past it the read is
``incomplete`` and the object is refused wherever a miner would be."""
MAX_TEMPLATES = 2000
"""Argo templates (inline ones included) read from one object; past it, ``incomplete``."""
MAX_EXPANDED = 64 * 1024
"""Characters a parameter substitution may produce in one string; past it, none is done."""
MAX_EMBEDDED = 64 * 1024
"""Characters of embedded manifests and pod-spec patches parsed per object, in all."""
MAX_VARIANTS = 8
"""Distinct argument sets an Argo template is judged with (one per caller); more callers
passing other values make the read ``incomplete``."""
FINDER_DEPTH = 32
"""Levels the shape finder descends; deeper parts are not searched (and the read says so)."""
FINDER_NODES = 10_000
"""Parts of an object the shape finder looks at, at most: its work is bounded, whatever the
object's size; an object with more is ``incomplete``."""

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Workload:
    """What an object will run: its containers, and the pod-level fields that decide where.

    ``pod`` holds what the webhook reads besides containers (``nodeSelector``,
    ``serviceAccountName``, ``imagePullSecrets``); ``found_by_shape`` says the containers were
    found by :func:`find_pod_specs`, not read from a known place.
    """

    template: podspec.PodTemplate
    pod: Obj
    found_by_shape: bool = False
    incomplete: str | None = None
    """Why part of the object was not read (a bound was reached): what was not read may hold a
    miner, so callers refuse it wherever the policy refuses miners
    (:func:`minerguard.evaluate.with_unread`)."""


Reader = Callable[[Obj], Workload]


@dataclass(frozen=True, slots=True)
class WorkloadKind:
    """A kind, its API group and plural, and how its containers are read."""

    group: str
    kind: str
    resource: str
    read: Reader = field(compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        """``(group, kind)``: what the table is keyed by."""
        return (self.group, self.kind)


def group_of(api_version: Any) -> str | None:
    """The API group of an ``apiVersion`` (``""`` for the core group), None when absent."""
    if not isinstance(api_version, str) or not api_version:
        return None
    return api_version.rpartition("/")[0] if "/" in api_version else ""


# -- reading helpers ----------------------------------------------------------------------


def _get(node: Any, *path: str) -> Any:
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _maps(value: Any) -> list[Obj]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _labels(metadata: Any) -> dict[str, str]:
    labels = _get(metadata, "labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _secrets(pod: Obj) -> tuple[str, ...]:
    return tuple(str(s["name"]) for s in _maps(pod.get("imagePullSecrets")) if "name" in s)


class _Collect:
    """Containers and pod specs found in one object, within the bounds."""

    def __init__(self) -> None:
        self.containers: list[podspec.Container] = []
        self.labels: list[dict[str, str]] = []
        self.incomplete: str | None = None
        self.embedded = 0
        """Characters of embedded manifests and patches parsed so far."""

    def cut(self, why: str) -> None:
        """Note that a bound was reached (the first reason is kept)."""
        self.incomplete = self.incomplete or why

    @property
    def full(self) -> bool:
        return len(self.containers) >= MAX_CONTAINERS

    def add(self, container: podspec.Container) -> None:
        if self.full:
            self.cut(f"more than {MAX_CONTAINERS} containers")
            return
        self.containers.append(container)

    def pod_spec(self, spec: Obj, labels: dict[str, str], prefix: str = "") -> None:
        """Every container of a pod spec, names prefixed with where the spec is."""
        self.labels.append(labels)
        for kind in podspec.ContainerKind:
            for raw in _maps(spec.get(kind.value)):
                found = podspec.container(raw, kind)
                if prefix:
                    found = _renamed(found, f"{prefix}/{found.name}")
                self.add(found)

    def workload(self, pod: Obj, *, by_shape: bool = False) -> Workload:
        # A label exemption must hold for every pod the object makes: only common labels count.
        common: dict[str, str] = dict(self.labels[0]) if self.labels else {}
        for other in self.labels[1:]:
            common = {k: v for k, v in common.items() if other.get(k) == v}
        return Workload(
            podspec.PodTemplate(
                labels=common,
                containers=tuple(self.containers),
                service_account=str(pod.get("serviceAccountName") or "") or None,
                image_pull_secrets=_secrets(pod),
            ),
            pod,
            by_shape,
            self.incomplete,
        )


def _renamed(container: podspec.Container, name: str) -> podspec.Container:
    return dataclasses.replace(container, name=name)


# -- substitution and scripts -------------------------------------------------------------


def substitute(text: str, pattern: re.Pattern[str], values: Mapping[str, str]) -> str:
    """One pass of ``pattern``'s references replaced by ``values``; unknown ones stay.

    One pass only (a value is never substituted into again) and bounded: a result over
    :data:`MAX_EXPANDED` characters is not produced, the text stays as written.
    """
    if not values or len(text) > MAX_EXPANDED:
        return text
    total = len(text)

    def repl(match: re.Match[str]) -> str:
        nonlocal total
        name = next(g for g in match.groups() if g is not None)
        value = values.get(name)
        if value is None or total + len(value) > MAX_EXPANDED:
            return match.group(0)
        total += len(value)
        return value

    return pattern.sub(repl, text)


def _substituted(raw: Obj, pattern: re.Pattern[str], values: Mapping[str, str]) -> dict[str, Any]:
    """A container's command, args, env values and script with parameters substituted."""
    out = dict(raw)
    if not values:
        return out
    for key in ("command", "args"):
        if isinstance(raw.get(key), list):
            out[key] = [
                substitute(w, pattern, values) if isinstance(w, str) else w for w in raw[key]
            ]
    for key in ("source", "script"):
        if isinstance(raw.get(key), str):
            out[key] = substitute(raw[key], pattern, values)
    env = []
    for item in _maps(raw.get("env")):
        value = item.get("value")
        env.append(
            {**item, "value": substitute(value, pattern, values)}
            if isinstance(value, str)
            else item
        )
    if env:
        out["env"] = env
    return out


SCRIPT_FLAGS: dict[str, str] = {
    "node": "-e",
    "nodejs": "-e",
    "perl": "-e",
    "ruby": "-e",
    "php": "-r",
    "pwsh": "-Command",
    "powershell": "-Command",
}
"""How an interpreter takes a program on its command line; every other one (shells, Python)
takes ``-c``."""


def script_argv(interpreter: Sequence[str], source: str) -> tuple[str, ...]:
    """The command line that runs ``source`` with ``interpreter``, as the engine judges it.

    Argo and Tekton write the script to a file and run it; the engine sees it as the
    equivalent ``sh -c SCRIPT`` (``python -c``, ``node -e``...), which its shell and
    interpreter readers take apart like any command line.
    """
    words = [w for w in interpreter if w]
    if words and words[-1] in {"-c", "-e", "-r", "-Command"}:
        return (*words, source)
    if not words:
        words = ["sh"]
    name = words[0].rsplit("/", 1)[-1]
    if name == "env" and len(words) > 1:
        name = words[1].rsplit("/", 1)[-1]
    name = name.rstrip("0123456789.")
    return (*words, SCRIPT_FLAGS.get(name, "-c"), source)


def _shebang(script: str) -> tuple[tuple[str, ...], str]:
    """Tekton's rule: a ``#!`` line names the interpreter; without one, ``sh`` runs it."""
    if script.startswith("#!"):
        first, _, body = script.partition("\n")
        words = tuple(first[2:].split())
        return (words or ("sh",)), body
    return ("sh",), script


# -- Argo Workflows -----------------------------------------------------------------------

ARGO_PARAMETER = re.compile(
    r"\{\{\s*(?:workflow\.parameters\.([\w.-]+)|inputs\.parameters\.([\w.-]+))\s*\}\}"
)
"""``{{workflow.parameters.NAME}}`` and ``{{inputs.parameters.NAME}}``."""


def _parameters(items: Any, *keys: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in _maps(items):
        name = item.get("name")
        for key in keys:
            value = item.get(key)
            if isinstance(name, str) and isinstance(value, (str, int, float, bool)):
                found[name] = str(value)
                break
    return found


def _argo_templates(spec: Obj, collect: _Collect) -> Iterator[Obj]:
    """Every template of a workflow spec, inline ones of steps and DAG tasks included."""
    stack = list(reversed(_maps(spec.get("templates"))))
    if isinstance(spec.get("templateDefaults"), Mapping):
        stack.append(spec["templateDefaults"])
    seen = 0
    while stack:
        if seen >= MAX_TEMPLATES:
            collect.cut(f"more than {MAX_TEMPLATES} templates")
            return
        template = stack.pop()
        seen += 1
        yield template
        callers = [*_maps(_get(template, "dag", "tasks"))]
        steps = template.get("steps")
        for group in steps if isinstance(steps, list) else ():
            callers.extend(_maps(group) if isinstance(group, list) else _maps([group]))
        for caller in callers:
            inline = caller.get("inline")
            if isinstance(inline, Mapping):
                stack.append({"name": caller.get("name", "inline"), **inline})


def _argo_calls(
    templates: Sequence[Obj], workflow: Mapping[str, str], collect: _Collect
) -> dict[str, list[dict[str, str]]]:
    """Per template name, the parameter values each step or task calling it passes.

    A passed value's own references (the workflow's parameters, the calling template's
    inputs) are substituted first, as Argo resolves them before the call.
    """
    calls: dict[str, list[dict[str, str]]] = {}
    for template in templates:
        scope = {
            **workflow,
            **_parameters(_get(template, "inputs", "parameters"), "value", "default"),
        }
        callers = [*_maps(_get(template, "dag", "tasks"))]
        steps = template.get("steps")
        for group in steps if isinstance(steps, list) else ():
            callers.extend(_maps(group) if isinstance(group, list) else _maps([group]))
        for caller in callers:
            target = caller.get("template")
            if isinstance(target, str):
                passed = {
                    k: substitute(v, ARGO_PARAMETER, scope)
                    for k, v in _parameters(
                        _get(caller, "arguments", "parameters"), "value"
                    ).items()
                }
                variants = calls.setdefault(target, [])
                if passed and passed not in variants:
                    if len(variants) < MAX_VARIANTS:
                        variants.append(passed)
                    else:
                        collect.cut(f"more than {MAX_VARIANTS} argument sets for {target}")
    return calls


_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _embedded(text: Any, collect: _Collect) -> Any:
    """A manifest or patch carried as a string (YAML or JSON), parsed within bounds.

    Judging these here refuses the workflow at apply time; it is not the only line: the Pod a
    patch shapes, and the object a resource template creates, each pass admission themselves
    when Argo creates them. So text past the budget (parsing YAML costs milliseconds per
    kilobyte on the admission path: :data:`MAX_EMBEDDED` characters per object in all) or
    text that only parses once Argo fills in runtime values is left to that admission.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    collect.embedded += len(text)
    if collect.embedded > MAX_EMBEDDED:
        return None
    try:
        if text.lstrip().startswith("{"):
            return json.loads(text)
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except (ValueError, yaml.YAMLError):
        return None


def _argo_spec(spec: Obj, collect: _Collect) -> None:
    workflow = _parameters(_get(spec, "arguments", "parameters"), "value")
    templates = list(_argo_templates(spec, collect))
    calls = _argo_calls(templates, workflow, collect)
    patch = _embedded(spec.get("podSpecPatch"), collect)
    if isinstance(patch, Mapping):
        collect.pod_spec(patch, {}, "podSpecPatch")
    for template in templates:
        name = str(template.get("name") or "template")
        inputs = _parameters(_get(template, "inputs", "parameters"), "value", "default")
        for index, passed in enumerate(calls.get(name) or [{}]):
            values = {**workflow, **inputs, **passed}
            label = name if index == 0 else f"{name}#{index + 1}"
            _argo_template(template, label, values, collect)


def _argo_template(template: Obj, name: str, values: dict[str, str], collect: _Collect) -> None:
    def read(raw: Any, kind: podspec.ContainerKind, default: str) -> None:
        if not isinstance(raw, Mapping):
            return
        raw = _substituted(raw, ARGO_PARAMETER, values)
        source = raw.get("source")
        if isinstance(source, str):
            command = raw.get("command")
            words = [str(w) for w in command] if isinstance(command, list) else []
            raw = {**raw, "command": list(script_argv(words, source)), "args": raw.get("args")}
        found = podspec.container(raw, kind)
        collect.add(_renamed(found, f"{name}/{found.name or default}"))

    read(template.get("container"), podspec.ContainerKind.CONTAINER, "main")
    read(template.get("script"), podspec.ContainerKind.CONTAINER, "main")
    for raw in _maps(_get(template, "containerSet", "containers")):
        read(raw, podspec.ContainerKind.CONTAINER, "main")
    for raw in _maps(template.get("initContainers")):
        read(raw, podspec.ContainerKind.INIT, "init")
    for raw in _maps(template.get("sidecars")):
        read(raw, podspec.ContainerKind.CONTAINER, "sidecar")
    patch = _embedded(template.get("podSpecPatch"), collect)
    if isinstance(patch, Mapping):
        collect.pod_spec(patch, {}, f"{name}/podSpecPatch")
    text = _get(template, "resource", "manifest")
    if isinstance(text, str):  # Argo fills in the parameters before it creates the object
        text = substitute(text, ARGO_PARAMETER, values)
    manifest = _embedded(text, collect)
    if isinstance(manifest, Mapping) and manifest.get("kind") in podspec.POD_TEMPLATE_PATHS:
        try:
            inner = podspec.template(manifest)
        except UnsupportedObjectError:
            return
        for found in inner.containers:
            collect.add(_renamed(found, f"{name}/resource/{found.name}"))


def _argo(path: tuple[str, ...]) -> Reader:
    def read(obj: Obj) -> Workload:
        spec = _get(obj, *path)
        if not isinstance(spec, Mapping):
            raise UnsupportedObjectError(f"{obj.get('kind')} has no {'.'.join(path)}")
        collect = _Collect()
        collect.labels.append(_labels(spec.get("podMetadata")))
        _argo_spec(spec, collect)
        return collect.workload(spec)

    return read


# -- Tekton -------------------------------------------------------------------------------

TEKTON_PARAMETER = re.compile(
    r"\$\(\s*params(?:\.([\w.-]+)|\[\s*'([^']+)'\s*\]|\[\s*\"([^\"]+)\"\s*\])\s*\)"
)
"""``$(params.NAME)``, ``$(params['NAME'])`` and ``$(params["NAME"])``."""


def _tekton_step(raw: Obj, template: Obj) -> dict[str, Any]:
    """A step with the task's ``stepTemplate`` applied: the step's fields win, env by name."""
    merged = {**template, **raw}
    if isinstance(template.get("env"), list) or isinstance(raw.get("env"), list):
        env: dict[str, Obj] = {}
        for item in [*_maps(template.get("env")), *_maps(raw.get("env"))]:
            env[str(item.get("name"))] = item
        merged["env"] = list(env.values())
    return merged


def _tekton_task(task: Obj, prefix: str, values: Mapping[str, str], collect: _Collect) -> None:
    defaults = _parameters(task.get("params"), "default")
    values = {**defaults, **values}
    template = task.get("stepTemplate")
    template = template if isinstance(template, Mapping) else {}
    for index, raw in enumerate(_maps(task.get("steps"))):
        step = _substituted(_tekton_step(raw, template), TEKTON_PARAMETER, values)
        _tekton_container(step, prefix, f"step-{index}", collect)
    for index, raw in enumerate(_maps(task.get("sidecars"))):
        sidecar = _substituted(raw, TEKTON_PARAMETER, values)
        _tekton_container(sidecar, prefix, f"sidecar-{index}", collect)


def _tekton_container(raw: dict[str, Any], prefix: str, default: str, collect: _Collect) -> None:
    script = raw.get("script")
    if isinstance(script, str) and script.strip():
        interpreter, body = _shebang(script)
        raw = {**raw, "command": list(script_argv(interpreter, body)), "args": None}
    found = podspec.container(raw, podspec.ContainerKind.CONTAINER)
    name = found.name or default
    collect.add(_renamed(found, f"{prefix}/{name}" if prefix else name))


def _values(items: Any, outer: Mapping[str, str]) -> dict[str, str]:
    """Parameter values a run or pipeline task passes, its own references substituted."""
    passed = _parameters(items, "value")
    return {k: substitute(v, TEKTON_PARAMETER, outer) for k, v in passed.items()}


def _tekton_pipeline(pipeline: Obj, values: Mapping[str, str], collect: _Collect) -> None:
    values = {**_parameters(pipeline.get("params"), "default"), **values}
    for task in [*_maps(pipeline.get("tasks")), *_maps(pipeline.get("finally"))]:
        spec = task.get("taskSpec")
        if isinstance(spec, Mapping):
            prefix = str(task.get("name") or "task")
            _tekton_task(spec, prefix, _values(task.get("params"), values), collect)


def _tekton_read(obj: Obj) -> Workload:
    kind = obj.get("kind")
    spec = _get(obj, "spec")
    if not isinstance(spec, Mapping):
        raise UnsupportedObjectError(f"{kind} has no spec")
    collect = _Collect()
    run = _values(spec.get("params"), {})
    pod: Obj = {}
    if kind in {"Task", "ClusterTask"}:
        _tekton_task(spec, "", {}, collect)
    elif kind == "TaskRun":
        task = spec.get("taskSpec")
        if isinstance(task, Mapping):
            _tekton_task(task, "", run, collect)
        pod = {**_pod_template(spec.get("podTemplate")), **_service_account(spec)}
    elif kind == "Pipeline":
        _tekton_pipeline(spec, {}, collect)
    else:  # PipelineRun
        pipeline = spec.get("pipelineSpec")
        if isinstance(pipeline, Mapping):
            _tekton_pipeline(pipeline, run, collect)
        template = _get(spec, "taskRunTemplate")
        pod = {
            **_pod_template(_get(template, "podTemplate")),
            **_service_account(template if isinstance(template, Mapping) else {}),
        }
    return collect.workload(pod)


def _pod_template(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _service_account(spec: Obj) -> dict[str, Any]:
    name = spec.get("serviceAccountName")
    return {"serviceAccountName": name} if isinstance(name, str) else {}


# -- paths to pod templates (Kubeflow and user-registered kinds) --------------------------


def parse_path(text: str) -> tuple[str, ...]:
    """``spec.tasks[*].template`` as keys, ``*`` for every list item or map value."""
    words = text.replace("[*]", ".*").replace("[]", ".*").strip(".").split(".")
    if not text.strip() or any(not w for w in words) or len(words) > 16:
        raise ValueError(f"not a path to a pod template: {text!r}")
    return tuple(words)


def _walk(node: Any, path: tuple[str, ...], trail: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    if not path:
        yield "/".join(trail), node
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(node, Mapping):
            for key, child in node.items():
                yield from _walk(child, rest, (*trail, str(key)))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                name = child.get("name") if isinstance(child, Mapping) else None
                yield from _walk(child, rest, (*trail, str(name or index)))
    elif isinstance(node, Mapping) and head in node:
        yield from _walk(node[head], rest, trail)


def _pod_at(node: Any) -> tuple[Obj, dict[str, str]] | None:
    """A pod spec, or a pod template's spec and labels; None for anything else."""
    if not isinstance(node, Mapping):
        return None
    if isinstance(node.get("containers"), list):
        return node, {}
    spec = node.get("spec")
    if isinstance(spec, Mapping) and isinstance(spec.get("containers"), list):
        return spec, _labels(node.get("metadata"))
    return None


def by_paths(paths: Sequence[str]) -> Reader:
    """A reader for pod templates (or pod specs) at ``paths``; every path is tried."""
    parsed = tuple(parse_path(p) for p in paths)

    def read(obj: Obj) -> Workload:
        collect = _Collect()
        first: Obj | None = None
        for path in parsed:
            for where, node in _walk(obj, path, ()):
                found = _pod_at(node)
                if found is not None:
                    first = first if first is not None else found[0]
                    collect.pod_spec(found[0], found[1], where)
        if first is None:
            raise UnsupportedObjectError(
                f"{obj.get('kind')} has no pod template at {', '.join(paths)}"
            )
        return collect.workload(first)

    return read


def _trainer(obj: Obj) -> Workload:
    """A Kubeflow TrainJob: ``spec.trainer`` overrides the runtime's trainer container."""
    trainer = _get(obj, "spec", "trainer")
    collect = _Collect()
    if isinstance(trainer, Mapping):
        collect.add(
            podspec.container({"name": "trainer", **trainer}, podspec.ContainerKind.CONTAINER)
        )
    return collect.workload({})


def find_pod_specs(obj: Obj) -> Workload:
    """Every pod-spec-shaped mapping in ``obj`` (a ``containers`` list of objects), bounded.

    The fallback for kinds nobody described: breadth first over the decoded JSON (dicts and
    lists), at most :data:`FINDER_DEPTH` levels and :data:`FINDER_NODES` parts queued, never
    inside a spec already found, so its work is bounded whatever the object. Raises when it
    finds none; says ``incomplete`` when a bound left part of the object unsearched.
    """
    collect = _Collect()
    first: Obj | None = None
    queue: deque[tuple[Any, tuple[str, ...]]] = deque([(obj.get("spec"), ())])
    room = FINDER_NODES - 1
    while queue and not collect.full:
        node, trail = queue.popleft()
        if isinstance(node, dict):
            found = _pod_at(node)
            if found is not None and any(
                isinstance(c, dict) and "image" in c for c in found[0]["containers"]
            ):
                first = first if first is not None else found[0]
                collect.pod_spec(found[0], found[1], "/".join(trail))
                continue
            children: Iterator[tuple[str, Any]] = iter(node.items())
        elif isinstance(node, list):
            children = ((str(i), v) for i, v in enumerate(node))
        else:
            continue
        deeper = len(trail) >= FINDER_DEPTH
        for key, child in children:
            if not isinstance(child, (dict, list)) or not child:
                continue
            if deeper:
                collect.cut(f"searched only {FINDER_DEPTH} levels deep for pod templates")
                break
            if room <= 0:
                collect.cut(f"searched only the first {FINDER_NODES} parts for pod templates")
                break
            room -= 1
            queue.append((child, (*trail, str(key))))
    if first is None and collect.incomplete is None:
        raise UnsupportedObjectError(f"no pod template found in {obj.get('kind')}")
    return collect.workload(first or {}, by_shape=True)


# -- the table ----------------------------------------------------------------------------


def _core(obj: Obj) -> Workload:
    """Kubernetes' own workloads: one pod template at a fixed path."""
    spec, _ = podspec.pod_spec(obj)
    return Workload(podspec.template(obj), spec)


_CORE: tuple[tuple[str, str, str], ...] = (
    ("", "Pod", "pods"),
    ("apps", "Deployment", "deployments"),
    ("apps", "StatefulSet", "statefulsets"),
    ("apps", "DaemonSet", "daemonsets"),
    ("apps", "ReplicaSet", "replicasets"),
    ("", "ReplicationController", "replicationcontrollers"),
    ("batch", "Job", "jobs"),
    ("batch", "CronJob", "cronjobs"),
)

ARGO = "argoproj.io"
TEKTON = "tekton.dev"
KUBEFLOW = "kubeflow.org"
TRAINER = "trainer.kubeflow.org"

KUBEFLOW_JOBS: tuple[tuple[str, str, str], ...] = (
    ("PyTorchJob", "pytorchjobs", "pytorchReplicaSpecs"),
    ("TFJob", "tfjobs", "tfReplicaSpecs"),
    ("MPIJob", "mpijobs", "mpiReplicaSpecs"),
    ("XGBoostJob", "xgboostjobs", "xgbReplicaSpecs"),
    ("PaddleJob", "paddlejobs", "paddleReplicaSpecs"),
    ("JAXJob", "jaxjobs", "jaxReplicaSpecs"),
    ("MXJob", "mxjobs", "mxReplicaSpecs"),
)
"""Kubeflow training jobs: each keeps a pod template per replica type (``Master``, ``Worker``)."""

CRD_KINDS: tuple[WorkloadKind, ...] = (
    WorkloadKind(ARGO, "Workflow", "workflows", _argo(("spec",))),
    WorkloadKind(ARGO, "WorkflowTemplate", "workflowtemplates", _argo(("spec",))),
    WorkloadKind(ARGO, "ClusterWorkflowTemplate", "clusterworkflowtemplates", _argo(("spec",))),
    WorkloadKind(ARGO, "CronWorkflow", "cronworkflows", _argo(("spec", "workflowSpec"))),
    *(
        WorkloadKind(TEKTON, kind, resource, _tekton_read)
        for kind, resource in (
            ("Task", "tasks"),
            ("ClusterTask", "clustertasks"),
            ("TaskRun", "taskruns"),
            ("Pipeline", "pipelines"),
            ("PipelineRun", "pipelineruns"),
        )
    ),
    *(
        WorkloadKind(KUBEFLOW, kind, resource, by_paths([f"spec.{replicas}.*.template"]))
        for kind, resource, replicas in KUBEFLOW_JOBS
    ),
    WorkloadKind(KUBEFLOW, "Notebook", "notebooks", by_paths(["spec.template"])),
    WorkloadKind(TRAINER, "TrainJob", "trainjobs", _trainer),
)
"""Workload CRDs judged out of the box (the chart's ``webhook.rules.workloadCRDs``)."""

_CORE_GROUPS: dict[str, str] = {kind: group for group, kind, _ in _CORE}
LEGACY_GROUPS = frozenset({"extensions", "apps", "batch", ""})
"""Groups Kubernetes' own workload kinds lived in (``extensions/v1beta1``, ``apps/v1beta2``)."""

CORE_KINDS: tuple[WorkloadKind, ...] = tuple(
    WorkloadKind(group, kind, resource, _core) for group, kind, resource in _CORE
)


class Workloads:
    """The kinds judged: the built-in table plus user-registered ones.

    Looked up by ``(group, kind)``; an object without ``apiVersion`` (hand-written tests,
    partial manifests) is matched by kind alone when exactly one kind has that name.
    """

    def __init__(self, kinds: Sequence[WorkloadKind]) -> None:
        self.kinds: dict[tuple[str, str], WorkloadKind] = {}
        for kind in kinds:
            self.kinds[kind.key] = kind
        by_name: dict[str, list[WorkloadKind]] = {}
        for kind in self.kinds.values():
            by_name.setdefault(kind.kind, []).append(kind)
        self._unique = {name: found[0] for name, found in by_name.items() if len(found) == 1}
        self.names = frozenset(by_name)

    def with_kinds(self, extra: Sequence[WorkloadKind]) -> Workloads:
        """This table and ``extra`` (which win on the same group and kind)."""
        return Workloads([*self.kinds.values(), *extra])

    def lookup(self, kind: Any, group: str | None) -> WorkloadKind | None:
        """The entry for ``kind`` in ``group`` (None: group unknown).

        Kubernetes' own kinds under a group they have since left (``extensions/v1beta1``
        Deployments, ``batch/v1beta1`` CronJobs: old manifests, old campaigns) are read as
        those kinds, as before groups were told apart.
        """
        if not isinstance(kind, str):
            return None
        if group is None:
            return self._unique.get(kind)
        found = self.kinds.get((group, kind))
        if found is None and group in LEGACY_GROUPS:
            return (
                self.kinds.get((_CORE_GROUPS.get(kind, ""), kind)) if kind in _CORE_GROUPS else None
            )
        return found

    def of(self, obj: Obj, group: str | None = None) -> WorkloadKind | None:
        """The entry for an object (its ``apiVersion`` names the group unless given)."""
        return self.lookup(
            obj.get("kind"), group if group is not None else group_of(obj.get("apiVersion"))
        )

    def read(self, obj: Obj, group: str | None = None) -> Workload:
        """What ``obj`` runs; raises UnsupportedObjectError for a kind not in the table."""
        entry = self.of(obj, group)
        if entry is None:
            raise UnsupportedObjectError(f"kind {obj.get('kind')!r} has no pod template")
        return entry.read(obj)


BUILTIN = Workloads([*CORE_KINDS, *CRD_KINDS])
"""Kubernetes' workloads and the workload CRDs minerguard knows."""


def user_kind(group: str, kind: str, resource: str, paths: Sequence[str]) -> WorkloadKind:
    """A user's CRD: its pod templates at ``paths``, or found by shape when none are given."""
    read = by_paths(paths) if paths else find_pod_specs
    return WorkloadKind(group, kind, resource, read)


RUNS_NOTHING: dict[str, str] = {
    **dict.fromkeys(
        (
            "ConfigMap",
            "Secret",
            "Service",
            "ServiceAccount",
            "Namespace",
            "Endpoints",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "LimitRange",
            "ResourceQuota",
            "Event",
        ),
        "",
    ),
    **dict.fromkeys(
        ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"), "rbac.authorization.k8s.io"
    ),
    **dict.fromkeys(("Ingress", "IngressClass", "NetworkPolicy"), "networking.k8s.io"),
    "PodDisruptionBudget": "policy",
    "HorizontalPodAutoscaler": "autoscaling",
    "StorageClass": "storage.k8s.io",
    "CSIDriver": "storage.k8s.io",
    "PriorityClass": "scheduling.k8s.io",
    "RuntimeClass": "node.k8s.io",
    "Lease": "coordination.k8s.io",
    "EndpointSlice": "discovery.k8s.io",
    "CustomResourceDefinition": "apiextensions.k8s.io",
    "APIService": "apiregistration.k8s.io",
    **dict.fromkeys(
        (
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ),
        "admissionregistration.k8s.io",
    ),
    **dict.fromkeys(("MinerPolicy", "MinerDetection"), "minerguard.io"),
}
"""Kubernetes kinds (and their groups) that declare no container: nothing to judge, nothing
to report as left out. Every other kind is judged, or named as not judged."""


def runs_nothing(obj: Obj) -> bool:
    """Whether ``obj`` is of a kind that declares no container (:data:`RUNS_NOTHING`)."""
    group = RUNS_NOTHING.get(str(obj.get("kind")))
    if group is None:
        return False
    found = group_of(obj.get("apiVersion"))
    return found is None or found == group or found.endswith("." + group)

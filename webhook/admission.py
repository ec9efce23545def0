"""From an AdmissionRequest to an answer: which containers, which images, which verdict.

The decision itself is :func:`minerguard.evaluate.evaluate_containers` (shared with
``minerguard scan``); this module only gathers its inputs for each kind of request: the
object's containers, the configs of the images whose entrypoint the pod does not override,
the namespace's labels when a policy selects on them, and for ``kubectl exec`` the command.
Images are read for the platform the pod's nodeSelector pins, or, when it pins none, for
every platform a node could pull (:mod:`webhook.platforms` judges them all).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minerguard import podspec, references, workloads
from minerguard.compiled_policy import CompiledPolicy, by_strictness
from minerguard.errors import UnsupportedObjectError
from minerguard.evaluate import (
    UNEXAMINED,
    Decision,
    Finding,
    Unverified,
    redacted,
    with_unread,
)
from minerguard.oci.registry import RUNNABLE_OS, Platform
from minerguard.signatures.engine import Subject
from webhook import audit, memo, platforms, referenced
from webhook import sessions as exec_sessions
from webhook.cluster import Cluster
from webhook.resolve import (
    ImageResolver,
    Keychain,
    KeychainLoader,
    PerPlatform,
    PlatformChoice,
    no_credentials,
)
from webhook.review import AdmissionRequest
from webhook.settings import WebhookSettings

log = logging.getLogger(__name__)

ARCH_LABEL = "kubernetes.io/arch"
OS_LABEL = "kubernetes.io/os"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


@dataclass(frozen=True)
class Answer:
    """What to tell the API server, and what it was based on."""

    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    kind: str = ""

    @property
    def verdict(self) -> str:
        """``denied``, ``warned`` or ``allowed`` (metrics)."""
        if not self.allowed:
            return "denied"
        return "warned" if self.warnings else "allowed"


ALLOW = Answer(allowed=True)
SYSTEM_ENTRY = "system-namespaces"
"""The ``entry`` audit annotation on answers of the system namespaces' webhook entry."""


def answer(decision: Decision, kind: str, notes: tuple[str, ...] = ()) -> Answer:
    """The response parts of a decision; audit annotations name what was found.

    ``notes`` are warnings about what was not fully judged; they are audited too.
    """
    annotations: dict[str, str] = {}
    if notes:
        annotations["incomplete"] = "; ".join(notes)
    if decision.findings or decision.unverified:
        annotations["verdict"] = "denied" if not decision.allowed else "warned"
        if decision.findings:
            annotations["findings"] = "; ".join(
                f"{_where(f.container, f.origin)}: {f.verdict.summary()} ({f.policy.name})"
                for f in decision.findings
            )
        if decision.unverified:
            annotations["unverified"] = "; ".join(
                f"{_where(u.container, u.origin)}: {u.error}" for u in decision.unverified
            )
    return Answer(
        allowed=decision.allowed,
        message=decision.message,
        warnings=(*decision.warnings, *notes),
        annotations=annotations,
        findings=decision.findings,
        kind=kind,
    )


def platform(spec: Mapping[str, Any], default: Platform) -> PlatformChoice:
    """The platform a pod's nodeSelector pins, or None when any node's may pull its images.

    Only a pinned architecture narrows the choice: a pod without one can land on every
    architecture of a mixed cluster, so all of an index's Linux entries are judged rather
    than a default one an attacker could keep benign. ``default`` fills in what a selector
    leaves out: the OS of an architecture-only selector, the architecture of a selector
    that pins only a non-Linux OS (whose entries are otherwise never judged).
    """
    selector = spec.get("nodeSelector")
    if not isinstance(selector, Mapping):
        return None
    arch = selector.get(ARCH_LABEL)
    system = selector.get(OS_LABEL)
    if isinstance(arch, str):
        return Platform(os=system if isinstance(system, str) else default.os, architecture=arch)
    if isinstance(system, str) and system != RUNNABLE_OS:
        return Platform(os=system, architecture=default.architecture)
    return None


class Reviewer:
    """Answers AdmissionRequests under the policies in force; one per webhook process."""

    def __init__(
        self,
        settings: WebhookSettings,
        policies: Callable[[], Sequence[CompiledPolicy]],
        resolver: ImageResolver,
        *,
        cluster: Cluster | None = None,
        sink: audit.Sink | None = None,
        clock: Callable[[], float] = time.monotonic,
        system: bool = False,
        objects: referenced.ObjectReader | None = None,
        sessions: exec_sessions.Recorder | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._objects = objects
        self._kinds = settings.workload_kinds()
        self.system = system
        """Answers the system namespaces' entry: ``policies`` are system views
        (:meth:`CompiledPolicy.system_view`), and answers say so in an audit annotation."""
        self._policies = policies
        self._resolver = resolver
        self._cluster = cluster
        self._sink = sink or audit.LogSink()
        self._clock = clock
        self._default_platform = Platform.parse(settings.default_platform)
        self._memo = memo.DecisionMemo()
        self.dropped = 0

    @property
    def deadline(self) -> float:
        """Seconds a review may take (its entry's timeout less a margin)."""
        return self._settings.deadline

    async def review(self, request: AdmissionRequest) -> Answer:
        """Decide; records detections for what was found (never for a dry run)."""
        started = self._clock()
        result = await self._decide(request, started)
        if self.system and (result.findings or result.warnings):
            result = dataclasses.replace(
                result, annotations={**result.annotations, "entry": SYSTEM_ENTRY}
            )
        if result.findings:
            self.dropped += audit.record(
                self._sink,
                request,
                result.kind,
                result.findings,
                authenticated=self._settings.caller_authenticated,
            )
        return result

    async def _decide(self, request: AdmissionRequest, started: float) -> Answer:
        kind = request.kind.kind
        if request.operation == "DELETE":
            return ALLOW
        sub = request.sub_resource
        if request.resource.resource == "pods" and sub in {"exec", "attach"}:
            if request.operation != "CONNECT":
                return ALLOW
            return await self._connect(request, started)
        if sub and sub != "ephemeralcontainers":
            return ALLOW  # status, scale, binding...: nothing new would run
        obj = request.object
        entry = self._kinds.lookup(kind, request.kind.group)
        if entry is None or not isinstance(obj, dict):
            return ALLOW  # not ours to judge; the webhook configuration decides what comes
        if obj.get("kind") != kind:
            obj = {**obj, "kind": kind}
        try:
            found = entry.read(obj)
        except UnsupportedObjectError as err:
            return Answer(allowed=True, warnings=(f"minerguard: not inspected: {err}",), kind=kind)
        spec, template = found.pod, found.template
        containers = template.containers
        if sub == "ephemeralcontainers":
            containers = _new_ephemeral(containers, request.old_object)
        return await self._evaluate(
            request,
            kind=kind,
            containers=containers,
            template=template,
            spec=spec,
            started=started,
            workload=found,
        )

    async def _evaluate(
        self,
        request: AdmissionRequest,
        *,
        kind: str,
        containers: tuple[podspec.Container, ...],
        template: podspec.PodTemplate,
        spec: Mapping[str, Any],
        started: float,
        workload: workloads.Workload | None = None,
    ) -> Answer:
        namespace = request.namespace or _namespace(request.object)
        policies = tuple(self._policies())
        labels = await self._namespace_labels(namespace, policies, started)
        whole = workload is None or workload.incomplete is None
        if (not containers and whole) or not any(
            p.covers_namespace(namespace, labels) for p in policies
        ):
            return Answer(allowed=True, kind=kind)
        if len(containers) > self._settings.max_containers:
            covering = [p for p in policies if p.covers_namespace(namespace, labels)]
            return _too_many(len(containers), self._settings.max_containers, covering, kind)
        # ConfigMaps and Secrets are read while the registries are: each under its deadline.
        reading = asyncio.ensure_future(
            self._references(namespace, containers, spec, _metadata(request, kind), started)
        )
        wanted = [c.image for c in containers if c.image and podspec.needs_image_config(c)]
        configs: dict[str, podspec.ImageConfig] = {}
        failures: dict[str, str] = {}
        per_platform: dict[str, PerPlatform] = {}
        if wanted:
            loader = self._keychain_loader(namespace, template, started)
            resolution = await self._resolver.resolve_all(
                wanted,
                platform(spec, self._default_platform),
                deadline=self._left(started, self._settings.resolve_deadline),
                keychain=loader,
            )
            configs, failures = resolution.configs, resolution.errors
            per_platform = resolution.per_platform
        containers, problems = await reading
        decide = self._memo.decide
        if per_platform:  # an unpinned pod, an index whose entries differ
            decide = functools.partial(platforms.decide, self._memo, per_platform=per_platform)
        decision = decide(
            containers=containers,
            labels=template.labels,
            namespace=namespace,
            namespace_labels=labels,
            policies=policies,
            configs=configs,
            errors=failures,
        )
        decision = with_unread(
            decision,
            problems=problems,
            workload=workload,
            containers=containers,
            namespace=namespace,
            namespace_labels=labels,
            policies=policies,
        )
        return answer(decision, kind, platforms.unjudged(per_platform))

    async def _references(
        self,
        namespace: str | None,
        containers: tuple[podspec.Container, ...],
        spec: Mapping[str, Any],
        metadata: Mapping[str, Any],
        started: float,
    ) -> tuple[tuple[podspec.Container, ...], tuple[references.Problem, ...]]:
        """The containers with their ConfigMap and Secret values, and what was not read."""
        objects = self._objects
        if objects is None or namespace is None or not any(c.references for c in containers):
            return containers, ()
        wanted = references.wanted(containers, spec)
        timeout = self._left(started, self._settings.reference_deadline)
        fetched = await objects.fetch(namespace, wanted, timeout)
        resolved = references.resolve(
            containers,
            spec,
            namespace,
            lambda kind, _ns, name: fetched.get((kind, name), references.Unreadable("not read")),
            metadata,
        )
        return resolved.containers, resolved.problems

    def _left(self, started: float, budget: float) -> float:
        spent = self._clock() - started
        return max(min(budget, self._settings.deadline - spent), 0.05)

    async def _namespace_labels(
        self, namespace: str | None, policies: Sequence[CompiledPolicy], started: float
    ) -> dict[str, str]:
        if namespace is None or self._cluster is None:
            return {}
        if all(p.spec.namespace_selector is None for p in policies):
            return {}
        return await self._cluster.namespace_labels(namespace, self._left(started, 2.0))

    def _keychain_loader(
        self, namespace: str | None, template: podspec.PodTemplate, started: float
    ) -> KeychainLoader:
        cluster = self._cluster
        if cluster is None or namespace is None:
            return no_credentials

        async def load() -> Keychain:
            return await cluster.keychain(
                namespace,
                template.image_pull_secrets,
                template.service_account,
                self._left(started, 2.0),
            )

        return load

    async def _connect(self, request: AdmissionRequest, started: float) -> Answer:
        """Judge a CONNECT, and record the session whatever the verdict (never awaited)."""
        options = request.object if isinstance(request.object, Mapping) else {}
        namespace = request.namespace or None
        pod: Mapping[str, Any] | None = None
        if self._cluster is not None and namespace and request.name:
            pod = await self._cluster.pod(namespace, request.name, self._left(started, 2.0))
        target = _target(pod, options.get("container"))
        secrets: list[str] = []
        result = await self._judge_connect(
            request, started, options=options, pod=pod, target=target, secrets=secrets
        )
        if self._sessions is not None:
            named = options.get("container")
            self._sessions.record(
                request,
                allowed=result.allowed,
                pod=pod,
                container=str(named) if named else (target.name if target else None),
                secrets=secrets,
                refusal=result.message,
            )
        return result

    async def _judge_connect(
        self,
        request: AdmissionRequest,
        started: float,
        *,
        options: Mapping[str, Any],
        pod: Mapping[str, Any] | None,
        target: podspec.Container | None,
        secrets: list[str],
    ) -> Answer:
        """``kubectl exec`` judges the command; ``kubectl attach`` the container attached to.

        ``secrets`` receives the Secret values the command's files were read from, so the
        session's trace never quotes them.
        """
        namespace = request.namespace or None
        kind = "PodExecOptions" if request.sub_resource == "exec" else "PodAttachOptions"
        if request.sub_resource == "attach":
            if pod is None or target is None:
                return Answer(allowed=True, kind=kind)
            template = podspec.template(pod)
            spec, _ = podspec.pod_spec(pod)
            return await self._evaluate(
                request,
                kind=kind,
                containers=(target,),
                template=template,
                spec=spec,
                started=started,
            )
        command = options.get("command")
        argv = tuple(str(word) for word in command) if isinstance(command, list) else ()
        if not argv:
            return Answer(allowed=True, kind=kind)
        labels_source = _labels(pod)
        image = target.image if target else ""
        container = podspec.Container(
            name=str(options.get("container") or (target.name if target else "")),
            kind=podspec.ContainerKind.CONTAINER,
            image=image,
            command=argv,
            args=None,
            env=(),
            # A script or config the exec names may be mounted from a ConfigMap or Secret.
            mounts=target.mounts if target else (),
            working_dir=target.working_dir if target else "",
        )
        problems: tuple[references.Problem, ...] = ()
        if pod is not None and container.mounts:
            pod_spec = pod.get("spec")
            (container,), problems = await self._references(
                namespace,
                (container,),
                pod_spec if isinstance(pod_spec, Mapping) else {},
                podspec.pod_metadata(pod),
                started,
            )
            secrets.extend(container.secrets)
        subject = Subject(
            argv=argv,
            texts=tuple(text for _, text in container.files),
            text_names=tuple(path for path, _ in container.files),
        )
        policies = self._policies()
        ns_labels = await self._namespace_labels(namespace, policies, started)
        findings: list[Finding] = []
        unexamined: list[Unverified] = []
        exempt: list[str] = []
        applied: list[str] = []
        for policy in by_strictness(policies):  # the deciding policy is named first
            if not policy.covers_namespace(namespace, ns_labels):
                continue
            applied.append(policy.name)
            # The command is the exec-er's, not the image's: an image exemption does not cover it.
            reason = policy.exemption(None, None, labels_source, argv)
            if reason is not None:
                exempt.append(f"{container.name}: {reason}")
                continue
            verdict = redacted(policy.engine.evaluate(subject), container.secrets)
            if verdict.matched:
                findings.append(Finding(policy, container, argv, verdict, None))
            elif verdict.incomplete:
                unexamined.append(Unverified(policy, container, UNEXAMINED, unexamined=True))
        decision = Decision(tuple(findings), tuple(unexamined), tuple(exempt), tuple(applied))
        decision = with_unread(
            decision,
            problems=problems,
            containers=(container,),
            namespace=namespace,
            namespace_labels=ns_labels,
            policies=policies,
        )
        return answer(decision, kind)


def _metadata(request: AdmissionRequest, kind: str) -> Mapping[str, Any]:
    """The metadata the object's pods get (``fieldRef``, downwardAPI volumes read it)."""
    obj = request.object
    return podspec.pod_metadata({**obj, "kind": kind}) if isinstance(obj, Mapping) else {}


def _namespace(obj: Any) -> str | None:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else None


def _labels(pod: Mapping[str, Any] | None) -> dict[str, str]:
    metadata = pod.get("metadata") if pod else None
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _where(container: podspec.Container, origin: str | None) -> str:
    """A container's name, with the probe or hook a finding came from."""
    return f"{container.name} {origin}" if origin else container.name


def _target(pod: Mapping[str, Any] | None, name: Any) -> podspec.Container | None:
    """The container a CONNECT names, else kubectl's default (annotation, then the first)."""
    if pod is None:
        return None
    try:
        containers = podspec.template(pod).containers
    except UnsupportedObjectError:
        return None
    if not name:
        metadata = pod.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
        if isinstance(annotations, Mapping):
            name = annotations.get(DEFAULT_CONTAINER_ANNOTATION)
    for container in containers:
        if not name or container.name == name:
            return container
    return None


def _new_ephemeral(
    containers: tuple[podspec.Container, ...], old: Any
) -> tuple[podspec.Container, ...]:
    """The ephemeral containers a ``kubectl debug`` adds (those already running were judged)."""
    before: set[str] = set()
    if isinstance(old, Mapping):
        try:
            before = {
                c.name
                for c in podspec.template({**old, "kind": "Pod"}).containers
                if c.kind is podspec.ContainerKind.EPHEMERAL
            }
        except UnsupportedObjectError:
            before = set()
    return tuple(
        c for c in containers if c.kind is podspec.ContainerKind.EPHEMERAL and c.name not in before
    )


def _too_many(count: int, limit: int, covering: Sequence[CompiledPolicy], kind: str) -> Answer:
    text = f"minerguard: {count} containers exceed the webhook's limit of {limit}; not verified"
    if any(p.enforcing for p in covering):
        return Answer(allowed=False, message=text, kind=kind)
    return Answer(allowed=True, warnings=(text,), kind=kind)

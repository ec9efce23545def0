"""Decide about an object: which containers would run a miner, under which policies.

The one place that turns containers plus policies into allow / warn / deny, so that
``minerguard scan`` and the admission webhook can never disagree. Pure: image configs are
looked up beforehand by the caller (the webhook from registries; scan has none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minerguard import podspec, references, workloads
from minerguard.api.policy import AdmissionAction, RegistryFailure
from minerguard.compiled_policy import CompiledPolicy, by_strictness
from minerguard.signatures.engine import Signal, Subject, Verdict


@dataclass(frozen=True, slots=True)
class Finding:
    """A container whose evidence reached the threshold under one policy."""

    policy: CompiledPolicy
    container: podspec.Container
    argv: tuple[str, ...]
    verdict: Verdict
    image_digest: str | None
    origin: str | None = None
    """The probe or hook (``livenessProbe``, ``lifecycle.postStart``); None: the container."""

    @property
    def denies(self) -> bool:
        """Whether this finding refuses admission (Enforce + Deny).

        Under a policy's system view (an excluded namespace, :meth:`CompiledPolicy.system_view`)
        only conclusive evidence refuses: a score of at least ``conclusive_score``.
        """
        if not (
            self.policy.enforcing and self.policy.spec.actions.admission is AdmissionAction.DENY
        ):
            return False
        return not self.policy.system or self.verdict.score >= self.policy.conclusive_score

    def message(self) -> str:
        """One line naming container, signal and policy."""
        top = self.verdict.signals[0]
        scope = ""
        if self.policy.system:
            conclusive = self.verdict.score >= self.policy.conclusive_score
            scope = (
                f", system namespace: {'' if conclusive else 'not '}conclusive"
                f" at {self.policy.conclusive_score:g}"
            )
        return (
            f"{_subject(self.container, self.origin)} would run a cryptominer: {top.describe()}; "
            f"signals {self.verdict.summary()} (score {self.verdict.score:g}{scope}) "
            f'[MinerPolicy "{self.policy.name}"]'
        )


def _subject(container: podspec.Container, origin: str | None) -> str:
    """``container "app"``, or ``container "app" livenessProbe exec`` for a probe or hook."""
    named = f'container "{container.name}"'
    return f"{named} {origin} exec" if origin else named


UNEXAMINED = "its command and environment exceed the review's judging budget"


@dataclass(frozen=True, slots=True)
class Unverified:
    """A container that could not be judged whole.

    Either its image's entrypoint could not be read from the registry (an outage the
    policy's ``onRegistryFailure`` weighs against availability), or, with ``unexamined``,
    the pod's own command and environment ran past the per-review judging budget. The
    second is chosen by whoever wrote the pod, so it is refused like a finding wherever the
    policy refuses miners: padding a pod must never hide a miner behind the budget.
    """

    policy: CompiledPolicy
    container: podspec.Container
    error: str
    unexamined: bool = False
    origin: str | None = None
    reference: bool = False
    """A ConfigMap or Secret it reads could not be resolved (``error`` names it); weighed by
    ``onRegistryFailure`` like an unreadable image: both are what the webhook cannot see."""
    soft: bool = False
    """Not read by the webhook's own configuration (Secrets not granted): reported only."""

    @property
    def denies(self) -> bool:
        """Whether the policy refuses what it cannot verify (never in a system namespace)."""
        if not self.policy.enforcing or self.soft or self.policy.system:
            return False
        if self.unexamined:
            return self.policy.spec.actions.admission is AdmissionAction.DENY
        return self.policy.spec.actions.on_registry_failure is RegistryFailure.DENY

    def message(self) -> str:
        """One line for the response."""
        if self.reference:
            return (
                f"{_subject(self.container, self.origin)} not verified: {self.error} "
                f'[MinerPolicy "{self.policy.name}"]'
            )
        if self.unexamined:
            return (
                f"{_subject(self.container, self.origin)} not fully examined ({self.error}) "
                f'[MinerPolicy "{self.policy.name}"]'
            )
        return (
            f'container "{self.container.name}": entrypoint of image {self.container.image} '
            f'not verified ({self.error}) [MinerPolicy "{self.policy.name}"]'
        )


@dataclass(frozen=True)
class Decision:
    """The outcome for one object."""

    findings: tuple[Finding, ...] = ()
    unverified: tuple[Unverified, ...] = ()
    exempt: tuple[str, ...] = ()
    policies: tuple[str, ...] = field(default_factory=tuple)

    @property
    def allowed(self) -> bool:
        """False when any finding or unverifiable image is refused."""
        return not any(f.denies for f in self.findings) and not any(
            u.denies for u in self.unverified
        )

    @property
    def message(self) -> str:
        """The refusal, one line per refusing reason; empty when allowed."""
        lines = [f.message() for f in self.findings if f.denies]
        lines += [u.message() for u in self.unverified if u.denies]
        return "minerguard: " + "; ".join(lines) if lines else ""

    @property
    def warnings(self) -> list[str]:
        """What is reported but not refused (Audit, Warn, unverified images allowed).

        Soft notes (a Secret the webhook is not granted) are left to the audit annotations
        and ``scan``'s notes: every pod with a database password would warn otherwise.
        """
        lines = [f"minerguard: {f.message()}" for f in self.findings if not f.denies]
        lines += [
            f"minerguard: {u.message()}" for u in self.unverified if not u.denies and not u.soft
        ]
        return lines


def evaluate_containers(
    containers: Sequence[podspec.Container],
    pod_labels: Mapping[str, str],
    namespace: str | None,
    namespace_labels: Mapping[str, str],
    policies: Sequence[CompiledPolicy],
    *,
    image_configs: Mapping[str, podspec.ImageConfig] | None = None,
    image_errors: Mapping[str, str] | None = None,
) -> Decision:
    """Evaluate containers under every policy that covers the namespace.

    Every covering policy is evaluated and the strictest outcome applies (any refusing
    finding refuses); findings come strictest policy first
    (:func:`minerguard.compiled_policy.by_strictness`), so the first record, message and
    annotation about an object name the policy that decided, not a weaker one.
    """
    image_configs = image_configs or {}
    image_errors = image_errors or {}
    findings: list[Finding] = []
    unverified: list[Unverified] = []
    exempt: list[str] = []
    applied: list[str] = []
    for policy in by_strictness(policies):
        if not policy.covers_namespace(namespace, namespace_labels):
            continue
        applied.append(policy.name)
        for declared in containers:
            config = image_configs.get(declared.image)
            digest = config.digest if config else None
            env = podspec.effective_env(declared, config)
            argv = podspec.effective_argv(declared, config)
            # An image exemption trusts what the image's publisher made it run, not a command
            # or arguments the pod's author set: those are judged like any other.
            overridden = declared.command is not None or declared.args is not None
            image_reason = policy.image_exemption(declared.image, digest)
            reason = policy.exemption(
                None if overridden else declared.image, digest, pod_labels, argv
            )
            if reason is not None:
                exempt.append(f"{declared.name}: {reason}")
            else:
                if image_reason is not None:
                    exempt.append(f"{declared.name}: {image_reason}, not the command the pod sets")
                subject = Subject(
                    argv=argv,
                    env=env,
                    image=None if image_reason else declared.image,
                    texts=tuple(text for _, text in declared.files),
                    text_names=tuple(path for path, _ in declared.files),
                )
                verdict = redacted(policy.engine.evaluate(subject), declared.secrets)
                quarantined = policy.quarantine_signal(declared.image, digest)
                if quarantined is not None:
                    verdict = Verdict(
                        verdict.score + quarantined.weight, (quarantined, *verdict.signals)
                    )
                if verdict.matched:
                    shown = _shown(argv, declared.secrets)
                    findings.append(Finding(policy, declared, shown, verdict, digest))
                elif verdict.incomplete:
                    unverified.append(Unverified(policy, declared, UNEXAMINED, unexamined=True))
                elif podspec.needs_image_config(declared) and declared.image in image_errors:
                    unverified.append(Unverified(policy, declared, image_errors[declared.image]))
            # Probes and hooks: set by the pod, so never covered by an image exemption; the
            # image itself (its name, a quarantined digest) was judged with the container.
            for run in declared.execs:
                reason = policy.exemption(None, digest, pod_labels, run.command)
                if reason is not None:
                    exempt.append(f"{declared.name} {run.origin} exec: {reason}")
                    continue
                verdict = policy.engine.evaluate(Subject(argv=run.command, env=env))
                verdict = redacted(verdict, declared.secrets)
                if verdict.matched:
                    shown = _shown(run.command, declared.secrets)
                    findings.append(Finding(policy, declared, shown, verdict, digest, run.origin))
                elif verdict.incomplete:
                    unverified.append(
                        Unverified(policy, declared, UNEXAMINED, unexamined=True, origin=run.origin)
                    )
    return Decision(tuple(findings), tuple(unverified), tuple(exempt), tuple(applied))


def redacted(verdict: Verdict, secrets: Sequence[str]) -> Verdict:
    """The verdict with every detail that quotes a Secret's value replaced."""
    if not secrets or not verdict.signals:
        return verdict
    signals = tuple(
        Signal(s.name, f"{s.name}: {references.SECRET_NOTE}", s.weight, s.where, s.signature)
        if references.quotes_secret(s.detail, secrets)
        else s
        for s in verdict.signals
    )
    return Verdict(verdict.score, signals, verdict.incomplete)


def _shown(argv: tuple[str, ...], secrets: Sequence[str]) -> tuple[str, ...]:
    """The command line as reported: Secret values expanded into it are replaced."""
    return tuple(references.redact(word, secrets) for word in argv) if secrets else argv


WHOLE_OBJECT = podspec.Container(
    name="(object)",
    kind=podspec.ContainerKind.CONTAINER,
    image="",
    command=None,
    args=None,
    env=(),
)
"""Stands for the part of an object that was not read, in a message."""


def with_unread(
    decision: Decision,
    *,
    problems: Sequence[references.Problem] = (),
    workload: workloads.Workload | None = None,
    containers: Sequence[podspec.Container],
    namespace: str | None,
    namespace_labels: Mapping[str, str],
    policies: Sequence[CompiledPolicy],
) -> Decision:
    """The decision, plus what could not be read, as unverified per covering policy.

    A reference that could not be resolved is named, never taken as empty. An object a bound
    stopped us reading whole (``workload.incomplete``: an Argo workflow padded past its
    template bound, a pod template deeper than the shape finder looks) is refused like a
    container past the judging budget, wherever a covering policy refuses miners: what was not
    read may hold a miner.
    """
    cut = workload.incomplete if workload is not None else None
    if not problems and cut is None:
        return decision
    covering = [
        policy
        for policy in by_strictness(policies)
        if policy.covers_namespace(namespace, namespace_labels)
    ]
    by_name = {c.name: c for c in containers}
    added = [
        Unverified(policy, by_name[p.container], p.what, reference=True, soft=p.soft)
        for policy in covering
        for p in problems
        if p.container in by_name
    ]
    if cut is not None:
        added += [Unverified(policy, WHOLE_OBJECT, cut, unexamined=True) for policy in covering]
    return Decision(
        decision.findings, (*decision.unverified, *added), decision.exempt, decision.policies
    )


def evaluate_object(
    obj: Mapping[str, Any],
    policies: Sequence[CompiledPolicy],
    *,
    namespace_labels: Mapping[str, str] | None = None,
    image_configs: Mapping[str, podspec.ImageConfig] | None = None,
    image_errors: Mapping[str, str] | None = None,
    kinds: workloads.Workloads = workloads.BUILTIN,
    lookup: references.Lookup | None = None,
) -> Decision:
    """Evaluate a Pod or workload of a kind in ``kinds``; raises UnsupportedObjectError else.

    ``lookup`` reads the ConfigMaps and Secrets the containers reference
    (:mod:`minerguard.references`); without one their values are unknown and not judged.
    """
    workload = kinds.read(obj)
    template = workload.template
    metadata = obj.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    namespace = namespace if isinstance(namespace, str) else None
    labels = namespace_labels or {}
    containers = template.containers
    problems: tuple[references.Problem, ...] = ()
    if lookup is not None:
        resolved = references.resolve(
            containers,
            workload.pod,
            namespace or "default",
            lookup,
            podspec.pod_metadata(obj),
        )
        containers, problems = resolved.containers, resolved.problems
    decision = evaluate_containers(
        containers,
        template.labels,
        namespace,
        labels,
        policies,
        image_configs=image_configs,
        image_errors=image_errors,
    )
    return with_unread(
        decision,
        problems=problems,
        workload=workload,
        containers=containers,
        namespace=namespace,
        namespace_labels=labels,
        policies=policies,
    )

"""What to do about one detection, decided from the detection, the policies covering the target.

The operator's steps are the runtime actions it carries out, in the order
:class:`~minerguard.api.policy.RuntimeAction` declares them: isolation and quarantine first (they
preserve evidence and close the door), then the owner is stopped (so it cannot recreate the
pod), then the pod is deleted. ``Isolate`` replaces ``DeletePod``: a policy asking for forensics
keeps the pod, cut off from the network. ``KillProcess`` is the node agent's action and is only
noted here. Admission-layer detections were already decided by the webhook and are only
alerted on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from minerguard.api.detection import Layer, MinerDetection, Phase
from minerguard.api.policy import Mode, RuntimeAction
from minerguard.compiled_policy import CompiledPolicy, by_strictness, runtime_actions

ORDER = tuple(action for action in RuntimeAction if not action.by_agent)
"""The operator's steps, in the order they run."""
DESTRUCTIVE = frozenset(action for action in ORDER if action.destructive)
"""The operator's steps that count against a policy's rate limit."""


@dataclass(frozen=True, slots=True)
class Target:
    """What is known about the detected pod when planning."""

    namespace: str
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] | None = None
    image: str | None = None
    digest: str | None = None
    command_line: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """Steps to run, and the phase and message once they have run."""

    steps: tuple[RuntimeAction, ...]
    phase: Phase
    message: str
    notes: tuple[str, ...] = ()
    """Requested actions that do not apply here, said in the detection's message."""
    would: tuple[RuntimeAction, ...] = ()
    """Dry run or circuit open: what would have been done."""
    held: tuple[RuntimeAction, ...] = ()
    """Requested steps replaced by another (DeletePod by Isolate): they run after all when the
    replacing step cannot be guaranteed (see :func:`minerguard_operator.actions.fall_through`)."""

    @property
    def destructive(self) -> bool:
        """Whether any step changes a workload (and so counts against the rate limit)."""
        return any(step in DESTRUCTIVE for step in self.steps)


def _alert_only(phase: Phase, message: str, notes: tuple[str, ...] = ()) -> Plan:
    return Plan((RuntimeAction.ALERT,), phase, message, notes)


def _applying(
    candidates: Sequence[CompiledPolicy], target: Target
) -> tuple[list[CompiledPolicy], dict[str, str]]:
    """The candidates covering and not exempting the target; why each other one does not."""
    argv = (target.command_line,) if target.command_line else ()
    applying: list[CompiledPolicy] = []
    why: dict[str, str] = {}
    for candidate in by_strictness(candidates):
        if not candidate.covers_namespace(target.namespace, target.namespace_labels):
            why[candidate.name] = (
                f'namespace {target.namespace} is not covered by "{candidate.name}"'
            )
            continue
        exempt = candidate.exemption(target.image, target.digest, target.pod_labels, argv)
        if exempt is not None:
            why[candidate.name] = f"exempt: {exempt}"
            continue
        applying.append(candidate)
    return applying, why


def plan(
    detection: MinerDetection,
    policy: CompiledPolicy | None,
    target: Target,
    *,
    policy_name: str,
    covering: Sequence[CompiledPolicy] = (),
) -> Plan:
    """The response to a detection (``policy`` None: the policy it names does not exist).

    Every policy in ``covering`` (the policies in force) that covers the target and does not
    exempt it is weighed with the named one, and the strictest outcome applies
    (:func:`minerguard.compiled_policy.strictness`): the runtime actions of all that act,
    together. So what a detection names (one policy, by the writer's choice or from a stale
    generation) never narrows the response: a named policy that exempts the pod or asks for
    less does not stop another covering policy's actions. The detection's own claims (an
    Audit mode, the admission layer) can only make the response weaker, never stronger.
    """
    spec = detection.spec
    if policy is None:
        why = f'MinerPolicy "{policy_name}" not found' if policy_name else "no policy named"
        return _alert_only(Phase.ALERTED, f"{why}: alert only")
    candidates = {p.name: p for p in covering if p.name != policy.name}
    applying, why_not = _applying([policy, *candidates.values()], target)
    if not applying:
        # A namespace the policies exclude (kube-system) is still watched as their
        # spec.systemNamespaces says: the agent reports there, and the response is an alert.
        views = (p.system_view("runtime") for p in [policy, *candidates.values()])
        watching, _ = _applying([v for v in views if v is not None], target)
        if watching:
            return _alert_only(
                Phase.ALERTED,
                f"namespace {target.namespace} is excluded by "
                f'"{watching[0].name}": alert only (spec.systemNamespaces)',
            )
        return Plan((), Phase.SKIPPED, why_not[policy.name])
    strictest = applying[0]
    acting = [p for p in applying if p.enforcing]
    notes: list[str] = []
    if strictest.name != policy.name:
        notes.append(f'decided by MinerPolicy "{strictest.name}", the strictest covering it')
    if (not acting and strictest.spec.mode is Mode.AUDIT) or spec.mode == Mode.AUDIT.value:
        return _alert_only(Phase.ALERTED, "Audit mode: alert only", tuple(notes))
    if spec.layer is Layer.ADMISSION:
        return _alert_only(Phase.ALERTED, "admission already decided about this object")
    requested = set(runtime_actions(acting or [strictest]))
    agents = [action for action in RuntimeAction if action.by_agent and action in requested]
    notes += [f"{action.value} is done by the node agent" for action in agents]
    replaced = RuntimeAction.ISOLATE in requested and RuntimeAction.DELETE_POD in requested
    if replaced:
        requested.discard(RuntimeAction.DELETE_POD)
        notes.append("DeletePod replaced by Isolate: the pod is kept for forensics")
    if spec.object_kind != "Pod":
        for pod_only in (RuntimeAction.DELETE_POD, RuntimeAction.ISOLATE):
            if pod_only in requested:
                requested.discard(pod_only)
                notes.append(f"{pod_only.value} does not apply to a {spec.object_kind}")
    steps = tuple(step for step in ORDER if step in requested)
    if not acting:  # the strictest is an Enforce policy in dry run
        would = tuple(s for s in steps if s in DESTRUCTIVE)
        said = ", ".join(would) or "nothing destructive"
        alert = (RuntimeAction.ALERT,)
        return Plan(alert, Phase.ALERTED, f"dry run: would {said}", tuple(notes), would)
    phase = Phase.ACTED if any(s in DESTRUCTIVE for s in steps) else Phase.ALERTED
    held = (RuntimeAction.DELETE_POD,) if RuntimeAction.ISOLATE in steps and replaced else ()
    return Plan(steps, phase, "", tuple(notes), held=held)


def suppress(planned: Plan, open_until: str) -> Plan:
    """The plan with its destructive steps held back because the circuit is open."""
    would = tuple(s for s in planned.steps if s in DESTRUCTIVE)
    message = f"rate limit reached: alert only until {open_until} (held back: {', '.join(would)})"
    return replace(
        planned, steps=(RuntimeAction.ALERT,), phase=Phase.SUPPRESSED, message=message, would=would
    )

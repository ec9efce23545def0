"""The operator's runtime actions: one handler per action, found in one table.

:data:`HANDLERS` maps every :class:`~minerguard.api.policy.RuntimeAction` the operator carries
out to the function that does it; :class:`~minerguard_operator.enforcer.Enforcer` looks a step
up there and nowhere else, and a unit test checks that every action not left to the node agent
has an entry. Whether an action is destructive (counts against the rate limit) and where it runs
in the order are said once, on the enum.

A handler gets the detection's :class:`Run` and its plan, does its step against the API
(:mod:`minerguard_operator.changes`, each change idempotent), posts the Events a person needs,
and returns the detail recorded with the step in ``status.actionsTaken`` (``""`` for none). It
raises :class:`~minerguard.kube.errors.ApiError` when the step failed; the enforcer retries
what may pass and records the rest as failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kubernetes import client

from minerguard.api.detection import ActionTaken, MinerDetection, Phase
from minerguard.api.policy import RuntimeAction
from minerguard.compiled_policy import CompiledPolicy
from minerguard.kube import workloads
from minerguard.timestamps import format_time
from minerguard_operator import changes, owners
from minerguard_operator.decide import containers, planning
from minerguard_operator.events import Emit, policy_ref


@dataclass
class Run:
    """One detection's handling in progress: what every handler reads and reports on."""

    api: client.ApiClient
    emit: Emit
    clock: Callable[[], float]
    detection: MinerDetection
    body: dict[str, Any]
    """The detection as read (the object of its Events)."""
    ref: str
    """``namespace/name`` of the detection."""
    policy: CompiledPolicy | None
    taken: list[ActionTaken]
    pod: dict[str, Any] | None = None
    target: dict[str, Any] | None = None
    """The detected object (a pod, or a workload found by a background scan), if it exists."""
    failures: list[str] = field(default_factory=list)
    chain: list[dict[str, Any]] | None = None

    @property
    def namespace(self) -> str:
        """The detection's namespace, which is the detected object's."""
        return self.detection.metadata.namespace or "default"

    def done(self, action: RuntimeAction) -> bool:
        """Whether an earlier attempt already recorded this step (then it is not repeated)."""
        return any(entry.action is action for entry in self.taken)

    def owners(self) -> list[dict[str, Any]]:
        """The controllers above the detected object, nearest first (read once per run)."""
        if self.chain is None:
            spec = self.detection.spec
            if self.target is not None:
                self.chain = owners.owner_chain(self.api, self.target)
            elif spec.owner is not None and spec.owner.kind in workloads.KINDS:
                owner = workloads.find(self.api, spec.owner.kind, self.namespace, spec.owner.name)
                self.chain = [owner] if owner else []
                if owner is not None:
                    self.chain += owners.owner_chain(self.api, owner)
            else:
                self.chain = []
        return self.chain

    def describe(self) -> str:
        """One line on what was detected where, for Events and stop annotations."""
        spec = self.detection.spec
        top = spec.reasons[0].detail if spec.reasons else "no reason given"
        where = f"container {spec.container}" if spec.container else "a container"
        return (
            f"{spec.layer.value} detection in {where} (score {spec.score:g}): {top} "
            f"[MinerDetection {self.ref}, MinerPolicy {spec.policy or '-'}]"
        )


Handler = Callable[[Run, planning.Plan], str]
"""Carries out one step; returns the detail for ``actionsTaken``."""


def _reference(obj: Mapping[str, Any] | None) -> str:
    if not obj:
        return "?"
    metadata = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{metadata.get('name')}"


def alert(run: Run, planned: planning.Plan) -> str:
    """Events on the detected object and the detection (and why nothing more was done)."""
    message = run.describe()
    if planned.would and planned.phase is Phase.ALERTED:
        message += f"; dry run: would {', '.join(planned.would)}"
    if run.target is not None:
        run.emit(run.target, "Warning", "MinerDetected", message)
    run.emit(run.body, "Warning", "MinerDetected", message)
    if planned.phase is Phase.SUPPRESSED:
        run.emit(run.body, "Warning", "MinerActionSuppressed", planned.message)
    return ""


def isolate(run: Run, planned: planning.Plan) -> str:
    """Deny the pod's egress; release it from an owner that is about to be stopped."""
    if run.pod is None:
        return "pod already gone"
    release: dict[str, str] | None = None
    if RuntimeAction.STOP_OWNER in planned.steps and run.owners():
        selector = (run.chain or [{}])[0].get("spec", {}).get("selector") or {}
        release = dict(selector.get("matchLabels") or {})
    name = changes.isolate_pod(run.api, run.pod, run.ref, release)
    run.emit(run.pod, "Warning", "MinerPodIsolated", f"egress denied by NetworkPolicy {name}")
    return f"NetworkPolicy/{name}"


def quarantine_image(run: Run, planned: planning.Plan) -> str:
    """Add the image's digest to the policy's quarantine list, which admission then refuses."""
    spec = run.detection.spec
    digest = spec.image_digest or containers.digest(run.pod or {}, spec.container)
    if not digest or run.policy is None:
        return "no image digest known"
    image = spec.image or containers.image(run.pod or {}, spec.container)
    now = format_time(run.clock())
    added = changes.quarantine_image(
        run.api, run.policy.name, digest=digest, image=image, detection=run.ref, now=now
    )
    if added:
        message = f"image {image or '?'}@{digest} quarantined after {run.ref}"
        run.emit(policy_ref(run.policy.name), "Warning", "MinerImageQuarantined", message)
    return digest if added else f"{digest} (already quarantined)"


def stop_owner(run: Run, planned: planning.Plan) -> str:
    """Stop the top owner (and a CronJob's running Jobs) from making pods."""
    chain = run.owners()
    if run.target is not None and run.detection.spec.object_kind != "Pod":
        chain = [run.target, *chain]
    if not chain:
        referenced = run.detection.spec.owner is not None or (
            run.target is not None and owners.controller_ref(run.target) is not None
        )
        return "owner already deleted" if referenced else "no owner"
    top = chain[-1]
    # A CronJob's running Job keeps making pods until it is suspended too.
    targets = [top, *(o for o in chain[:-1] if o.get("kind") == "Job")]
    done = []
    now = format_time(run.clock())
    for owner in targets:
        if owner.get("kind") not in changes.STOPPABLE_KINDS:
            continue
        stopped = changes.stop_owner(run.api, owner, run.ref, run.describe(), now)
        if not stopped.already:
            message = f"{stopped.describe()} after {run.ref}; see minerguard.io/* annotations"
            run.emit(owner, "Warning", "MinerOwnerStopped", message)
        done.append(stopped.describe())
    return ", ".join(done) or f"{_reference(top)} cannot be stopped"


def delete_pod(run: Run, planned: planning.Plan) -> str:
    """Delete the detected pod with the policy's grace period and a uid precondition."""
    if run.pod is None:
        return "pod already gone"
    metadata = run.pod.get("metadata") or {}
    grace = run.policy.spec.actions.pod_deletion_grace_seconds if run.policy else 0
    deleted = changes.delete_pod(
        run.api, run.namespace, str(metadata.get("name")), grace, metadata.get("uid")
    )
    if not deleted:
        return "pod already gone"
    run.emit(run.pod, "Warning", "MinerPodDeleted", f"deleted after {run.ref}")
    return f"grace {grace}s"


HANDLERS: Final[Mapping[RuntimeAction, Handler]] = {
    RuntimeAction.ALERT: alert,
    RuntimeAction.ISOLATE: isolate,
    RuntimeAction.QUARANTINE_IMAGE: quarantine_image,
    RuntimeAction.STOP_OWNER: stop_owner,
    RuntimeAction.DELETE_POD: delete_pod,
}
"""Every runtime action the operator carries out, and its handler (the order is the enum's)."""

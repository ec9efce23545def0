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
from minerguard.kube import errors
from minerguard.timestamps import format_time
from minerguard_operator import changes, owners
from minerguard_operator.decide import containers, isolation, marks, planning
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
    unverified: str | None = None
    """Why an owner the detection or the pod claims was not followed (said by StopOwner)."""
    mismatch: str | None = None
    """Why the object found under the detection's name is not the one detected (uid, node)."""
    label_guarded: bool = False
    """The cluster guards the ``minerguard.io/isolated`` label (only the operator may change it)."""

    @property
    def namespace(self) -> str:
        """The detection's namespace, which is the detected object's."""
        return self.detection.metadata.namespace or "default"

    @property
    def missing(self) -> str:
        """Why there is no pod to act on: gone, or not the one detected."""
        return self.mismatch or "pod already gone"

    def done(self, action: RuntimeAction) -> bool:
        """Whether an earlier attempt already recorded this step (then it is not repeated)."""
        return any(entry.action is action for entry in self.taken)

    def owners(self) -> list[dict[str, Any]]:
        """The controllers above the detected object, nearest first (read once per run).

        Each is identified by uid as the API shows it: the object's own ownerReferences, the
        release this operator recorded in the detection's status, or the detection's
        ``spec.owner`` only when its uid matches the object of that name.
        """
        if self.chain is None:
            self.chain = self._find_owners()
        return self.chain

    def _find_owners(self) -> list[dict[str, Any]]:
        spec = self.detection.spec
        first: dict[str, Any] | None
        if self.target is not None:
            chain = owners.owner_chain(self.api, self.target)
            released = self._released()
            if chain or owners.controller_ref(self.target) is not None or released is None:
                return chain
            kind, name, uid = released
            first = owners.verified(self.api, kind, self.namespace, name, uid)
            if first is None:
                self.unverified = f"released owner {kind}/{name} (uid {uid}) no longer exists"
                return []
        elif spec.owner is not None:
            owner = spec.owner
            first = owners.verified(self.api, owner.kind, self.namespace, owner.name, owner.uid)
            if first is None:
                why = "no uid given" if not owner.uid else f"no {owner.kind} with uid {owner.uid}"
                self.unverified = f"owner {owner.kind}/{owner.name} not verified: {why}"
                return []
        else:
            return []
        return [first, *owners.owner_chain(self.api, first)]

    def _released(self) -> tuple[str, str, str] | None:
        """The owner this operator released the pod from, as recorded in the status."""
        for entry in self.taken:
            if entry.action is RuntimeAction.ISOLATE:
                return marks.parse_released(entry.detail)
        return None

    @property
    def bound(self) -> bool:
        """Whether the located object is the detected one by uid (or bound by this read)."""
        if self.target is None:
            return False
        uid = (self.target.get("metadata") or {}).get("uid")
        claimed = self.detection.spec.pod_uid
        return bool(uid) and (claimed == uid or (claimed is None and self.target is self.pod))

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
    """Deny the pod's egress, release it from an owner about to be stopped, and check it holds.

    Isolation is only claimed when it can be trusted: the label that selects the pod must be
    guarded and, without an AdminNetworkPolicy, no other NetworkPolicy may select the pod and
    allow egress (see :mod:`.decide.isolation`). Otherwise the detail says "not guaranteed" and
    why, an Event says so, and the enforcer falls through to ``DeletePod`` when the policy asks
    for it (:func:`fall_through`).
    """
    if run.pod is None:
        return run.missing
    release: dict[str, str] | None = None
    if RuntimeAction.STOP_OWNER in planned.steps and run.owners():
        selector = (run.chain or [{}])[0].get("spec", {}).get("selector") or {}
        release = dict(selector.get("matchLabels") or {})
    admin = changes.serves_admin_network_policy(run.api)
    try:
        done = changes.isolate_pod(run.api, run.pod, run.ref, release, admin=admin)
    except errors.Forbidden:
        if not admin:
            raise
        admin = False  # served but not granted to us: a NetworkPolicy, checked as such
        done = changes.isolate_pod(run.api, run.pod, run.ref, release, admin=admin)
    uid = str((run.pod.get("metadata") or {}).get("uid") or "")
    doubts = []
    if not admin:
        try:
            others = changes.list_network_policies(run.api, run.namespace)
        except errors.Forbidden:
            doubts.append("NetworkPolicies cannot be listed to check that none lets it out")
        else:
            own = done.policy.partition("/")[2]
            found = isolation.undermining(others, done.labels, own)
            if found:
                doubts.append(
                    f"NetworkPolicy {', '.join(found)} also selects the pod and allows egress "
                    "(NetworkPolicies only add permissions)"
                )
    if done.labels.get(marks.ISOLATED) != uid:
        doubts.append(f"the {marks.ISOLATED} label did not hold")
    if not run.label_guarded:
        doubts.append(f"whoever may patch the pod can remove its {marks.ISOLATED} label")
    detail = done.policy
    if done.owner is not None:
        owner = done.owner
        detail = marks.released_detail(
            detail, str(owner["kind"]), str(owner["name"]), str(owner["uid"])
        )
    if doubts:
        why = "; ".join(doubts)
        run.emit(run.pod, "Warning", "MinerIsolationNotGuaranteed", f"{done.policy}: {why}")
        return f"{detail}; {isolation.NOT_GUARANTEED}: {why}"
    run.emit(run.pod, "Warning", "MinerPodIsolated", f"egress denied by {done.policy}")
    return detail


def isolation_doubted(run: Run) -> str | None:
    """Why the recorded ``Isolate`` step does not hold (it failed, or is not guaranteed).

    None when it holds, or was not run.
    """
    for entry in run.taken:
        if entry.action is not RuntimeAction.ISOLATE:
            continue
        if entry.failed:
            return "it failed"
        if isolation.NOT_GUARANTEED in entry.detail:
            return entry.detail.partition(f"{isolation.NOT_GUARANTEED}: ")[2] or entry.detail
    return None


def fall_through(run: Run, planned: planning.Plan) -> RuntimeAction | None:
    """The step to run because isolation could not be guaranteed, if the plan holds one back.

    ``Isolate`` replaces ``DeletePod`` (the pod is kept for forensics) only when the isolation
    holds; when it cannot be guaranteed the pod is deleted after all, where a policy asked for
    ``DeletePod`` (:attr:`.planning.Plan.held`). Read from the recorded steps, so an operator
    restarted in between resumes.
    """
    if isolation_doubted(run) is None:
        return None
    for step in planned.held:
        if not run.done(step):
            return step
    return None


def quarantine_image(run: Run, planned: planning.Plan) -> str:
    """Add the digest the pod runs to the policy's quarantine list, which admission refuses.

    The digest is the one the kubelet reports in the pod's status for the detected container,
    never the detection's claim: whoever could write a detection could otherwise get any
    digest refused cluster-wide. A detection whose claim disagrees is refused (and says why).
    """
    spec = run.detection.spec
    if run.pod is None:
        return f"no image digest known ({run.missing})"
    running = containers.digest(run.pod, spec.container)
    if not running or run.policy is None:
        return "no image digest known"
    if spec.image_digest and spec.image_digest != running:
        message = (
            f"refused: the detection names {spec.image_digest} but the pod's status says "
            f"container {spec.container or '?'} runs {running}"
        )
        run.emit(run.body, "Warning", "MinerQuarantineRefused", message)
        return message
    image = containers.image(run.pod, spec.container)
    now = format_time(run.clock())
    added = changes.quarantine_image(
        run.api, run.policy.name, digest=running, image=image, detection=run.ref, now=now
    )
    if added:
        message = f"image {image or '?'}@{running} quarantined after {run.ref}"
        run.emit(policy_ref(run.policy.name), "Warning", "MinerImageQuarantined", message)
    return running if added else f"{running} (already quarantined)"


def stop_owner(run: Run, planned: planning.Plan) -> str:
    """Stop the top owner (and a CronJob's running Jobs) from making pods."""
    chain = run.owners()
    if run.target is not None and run.detection.spec.object_kind != "Pod" and run.bound:
        chain = [run.target, *chain]
    if not chain:
        if run.unverified:
            return run.unverified
        referenced = run.target is not None and owners.controller_ref(run.target) is not None
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
        return run.missing
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

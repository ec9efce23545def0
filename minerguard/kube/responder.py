"""Carry out the response to one MinerDetection against the API, exactly once.

Idempotence across restarts has three layers: kopf records that the creation handler finished;
the detection's ``status.phase`` leaves ``Pending`` only when the response is complete (a
detection that already has a final phase is never acted on again, whatever kopf remembers);
and each step is appended to ``status.actionsTaken`` as soon as it is done, so an operator
that dies mid-way resumes with the next step. Every step is also safe to repeat (a pod already
gone, an owner already at 0, a NetworkPolicy that exists).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from pydantic import ValidationError

from minerguard.api.detection import MinerDetection, Phase
from minerguard.api.policy import Retention
from minerguard.kube import enforce, errors, resources, workloads
from minerguard.policy import CompiledPolicy
from minerguard.response import planning, records, statuses
from minerguard.response.planning import Step
from minerguard.response.state import Emit, State
from minerguard.response.timestamps import format_time

log = logging.getLogger(__name__)
DEFAULT_RETENTION = Retention()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the handling of one detection ended."""

    phase: Phase | None
    message: str
    folded_into: str | None = None


@dataclass
class _Run:
    """One detection's handling in progress."""

    detection: MinerDetection
    body: dict[str, Any]
    ref: str
    policy: CompiledPolicy | None
    pod: dict[str, Any] | None
    target: dict[str, Any] | None
    taken: list[str]
    failures: list[str] = field(default_factory=list)
    chain: list[dict[str, Any]] | None = None

    @property
    def namespace(self) -> str:
        return self.detection.metadata.namespace or "default"

    def done(self, step: Step) -> bool:
        return any(entry.split(":", 1)[0] == step.value for entry in self.taken)


def _reference(obj: Mapping[str, Any] | None) -> str:
    if not obj:
        return "?"
    metadata = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{metadata.get('name')}"


def _validation_message(err: ValidationError) -> str:
    first = err.errors()[0]
    field_path = ".".join(str(p) for p in first["loc"])
    return f"invalid detection: {field_path}: {first['msg']}"


class Responder:
    """Handles MinerDetections: dedup, plan, rate limit, act, record."""

    def __init__(
        self, api_factory: Callable[[], client.ApiClient], state: State, emit: Emit
    ) -> None:
        self._api_factory = api_factory
        self._api: client.ApiClient | None = None
        self.state = state
        self.emit = emit
        # Duplicates are handled concurrently; claiming a count and writing it happen under
        # one lock so the original's occurrences are written in claim order and never go back.
        self._fold_lock = threading.Lock()

    @property
    def api(self) -> client.ApiClient:
        """The API client, made on first use."""
        if self._api is None:
            self._api = self._api_factory()
        return self._api

    def handle(self, body: Mapping[str, Any]) -> Outcome:
        """Respond to a detection; raises :class:`errors.ApiError` when it should be retried."""
        raw = dict(body)
        record = records.record(raw)
        if record.processed:
            return Outcome(Phase(record.phase or Phase.PENDING), "already handled")
        try:
            detection = MinerDetection.model_validate(raw)
        except ValidationError as err:
            message = _validation_message(err)
            self._finish(record.namespace, record.name, Phase.FAILED, [], message)
            self.emit(raw, "Warning", "MinerDetectionInvalid", message)
            self.state.metrics.detections.labels(Phase.FAILED.value).inc()
            return Outcome(Phase.FAILED, message)
        policy_name = detection.spec.policy or ""
        policy_state = self.state.policies.get(policy_name) if policy_name else None
        policy = policy_state.compiled if policy_state else None
        taken = list((raw.get("status") or {}).get("actionsTaken") or [])
        if not taken:
            folded = self._fold(record, policy)
            if folded is not None:
                return folded
        run = _Run(detection, raw, record.ref, policy, None, None, taken)
        self._locate(run)
        planned = self._plan(run, policy_name)
        if planned.destructive and policy is not None and not run.taken:
            admission = self.state.breaker.admit(policy.name, run.ref, policy.spec.rate_limit)
            if not admission.allowed and admission.open_until is not None:
                until = format_time(admission.open_until)
                planned = planning.suppress(planned, until)
                if admission.tripped:
                    self._tripped(policy, until)
        for step in planned.steps:
            if not run.done(step):
                self._step(run, step, planned)
        phase = Phase.FAILED if run.failures else planned.phase
        message = "; ".join(
            part for part in (planned.message, *planned.notes, *run.failures) if part
        )
        self._finish(run.namespace, detection.metadata.name or "", phase, run.taken, message)
        self.state.metrics.detections.labels(phase.value).inc()
        created = record.created
        if created is not None:
            self.state.metrics.latency.observe(max(0.0, self.state.clock() - created))
        return Outcome(phase, message)

    def _fold(
        self, record: records.DetectionRecord, policy: CompiledPolicy | None
    ) -> Outcome | None:
        if record.key is None:
            return None
        retention = policy.spec.retention if policy else DEFAULT_RETENTION
        if retention.dedup_window_seconds <= 0:
            return None
        at = record.created or self.state.clock()
        for _ in range(2):
            with self._fold_lock:
                fold = self.state.dedup.claim(
                    record.key, record.ref, at, retention.dedup_window_seconds
                )
                if fold is None:
                    return None
                namespace, _, name = fold.original.partition("/")
                try:
                    resources.patch_detection_status(
                        self.api,
                        namespace,
                        name,
                        {"occurrences": fold.occurrences, "lastSeen": format_time(at)},
                    )
                except errors.NotFound:
                    self.state.dedup.forget(record.key, fold.original)
                    continue  # the original expired or was deleted: this one replaces it
            resources.delete_detection(self.api, record.namespace, record.name)
            self.state.metrics.folded.inc()
            message = f"duplicate of {fold.original} (occurrence {fold.occurrences})"
            return Outcome(None, message, folded_into=fold.original)
        return None

    def _locate(self, run: _Run) -> None:
        spec = run.detection.spec
        if not spec.pod_name or spec.object_kind not in workloads.KINDS:
            return
        found = workloads.find(self.api, spec.object_kind, run.namespace, spec.pod_name)
        uid = (found or {}).get("metadata", {}).get("uid")
        if found is not None and spec.pod_uid and uid and uid != spec.pod_uid:
            found = None  # same name, different object: not the one that was detected
        run.target = found
        if spec.object_kind == "Pod":
            run.pod = found

    def _plan(self, run: _Run, policy_name: str) -> planning.Plan:
        spec = run.detection.spec
        pod = run.pod or {}
        labels = (pod.get("metadata") or {}).get("labels") if pod else None
        digest = spec.image_digest or _pod_digest(pod, spec.container)
        policy = run.policy
        namespace_labels: dict[str, str] = {}
        if policy is not None and policy.spec.namespace_selector is not None:
            namespace_labels = workloads.namespace_labels(self.api, run.namespace)
        target = planning.Target(
            namespace=run.namespace,
            namespace_labels=namespace_labels,
            pod_labels=labels if isinstance(labels, dict) else None,
            image=spec.image or _pod_image(pod, spec.container),
            digest=digest,
            command_line=spec.evidence.command_line,
        )
        return planning.plan(run.detection, policy, target, policy_name=policy_name)

    def _owners(self, run: _Run) -> list[dict[str, Any]]:
        if run.chain is None:
            spec = run.detection.spec
            if run.target is not None:
                run.chain = workloads.owner_chain(self.api, run.target)
            elif spec.owner is not None and spec.owner.kind in workloads.KINDS:
                owner = workloads.find(self.api, spec.owner.kind, run.namespace, spec.owner.name)
                run.chain = [owner] if owner else []
                if owner is not None:
                    run.chain += workloads.owner_chain(self.api, owner)
            else:
                run.chain = []
        return run.chain

    def _step(self, run: _Run, step: Step, planned: planning.Plan) -> None:
        try:
            detail = getattr(self, f"_do_{step.name.lower()}")(run, planned)
        except errors.ApiError as err:
            if err.retryable:
                raise
            self.state.metrics.action_errors.labels(step.value, type(err).__name__).inc()
            run.failures.append(f"{step.value} failed: {err}")
            run.taken.append(f"{step.value}: failed")
        else:
            self.state.metrics.actions.labels(step.value).inc()
            run.taken.append(f"{step.value}: {detail}" if detail else step.value)
        if step in planning.DESTRUCTIVE:
            resources.patch_detection_status(
                self.api,
                run.namespace,
                run.detection.metadata.name or "",
                {"actionsTaken": run.taken},
            )

    def _describe(self, run: _Run) -> str:
        spec = run.detection.spec
        top = spec.reasons[0].detail if spec.reasons else "no reason given"
        where = f"container {spec.container}" if spec.container else "a container"
        return (
            f"{spec.layer.value} detection in {where} (score {spec.score:g}): {top} "
            f"[MinerDetection {run.ref}, MinerPolicy {spec.policy or '-'}]"
        )

    def _do_alert(self, run: _Run, planned: planning.Plan) -> str:
        message = self._describe(run)
        if planned.would and planned.phase is Phase.ALERTED:
            message += f"; dry run: would {', '.join(planned.would)}"
        if run.target is not None:
            self.emit(run.target, "Warning", "MinerDetected", message)
        self.emit(run.body, "Warning", "MinerDetected", message)
        if planned.phase is Phase.SUPPRESSED:
            self.emit(run.body, "Warning", "MinerActionSuppressed", planned.message)
        return ""

    def _do_isolate(self, run: _Run, planned: planning.Plan) -> str:
        if run.pod is None:
            return "pod already gone"
        release: dict[str, str] | None = None
        if Step.STOP_OWNER in planned.steps and self._owners(run):
            selector = (run.chain or [{}])[0].get("spec", {}).get("selector") or {}
            release = dict(selector.get("matchLabels") or {})
        name = enforce.isolate_pod(self.api, run.pod, run.ref, release)
        self.emit(run.pod, "Warning", "MinerPodIsolated", f"egress denied by NetworkPolicy {name}")
        return f"NetworkPolicy/{name}"

    def _do_quarantine_image(self, run: _Run, planned: planning.Plan) -> str:
        spec = run.detection.spec
        digest = spec.image_digest or _pod_digest(run.pod or {}, spec.container)
        if not digest or run.policy is None:
            return "no image digest known"
        image = spec.image or _pod_image(run.pod or {}, spec.container)
        now = format_time(self.state.clock())
        added = enforce.quarantine_image(
            self.api, run.policy.name, digest=digest, image=image, detection=run.ref, now=now
        )
        if added:
            policy_body = _policy_ref(run.policy.name)
            message = f"image {image or '?'}@{digest} quarantined after {run.ref}"
            self.emit(policy_body, "Warning", "MinerImageQuarantined", message)
        return digest if added else f"{digest} (already quarantined)"

    def _do_stop_owner(self, run: _Run, planned: planning.Plan) -> str:
        chain = self._owners(run)
        if run.target is not None and run.detection.spec.object_kind != "Pod":
            chain = [run.target, *chain]
        if not chain:
            referenced = run.detection.spec.owner is not None or (
                run.target is not None and workloads.controller_ref(run.target) is not None
            )
            return "owner already deleted" if referenced else "no owner"
        top = chain[-1]
        # A CronJob's running Job keeps making pods until it is suspended too.
        targets = [top, *(o for o in chain[:-1] if o.get("kind") == "Job")]
        done = []
        now = format_time(self.state.clock())
        for owner in targets:
            if owner.get("kind") not in enforce.STOPPABLE_KINDS:
                continue
            stopped = enforce.stop_owner(self.api, owner, run.ref, self._describe(run), now)
            if not stopped.already:
                message = f"{stopped.describe()} after {run.ref}; see minerguard.io/* annotations"
                self.emit(owner, "Warning", "MinerOwnerStopped", message)
            done.append(stopped.describe())
        return ", ".join(done) or f"{_reference(top)} cannot be stopped"

    def _do_delete_pod(self, run: _Run, planned: planning.Plan) -> str:
        if run.pod is None:
            return "pod already gone"
        metadata = run.pod.get("metadata") or {}
        grace = run.policy.spec.actions.pod_deletion_grace_seconds if run.policy else 0
        deleted = enforce.delete_pod(
            self.api, run.namespace, str(metadata.get("name")), grace, metadata.get("uid")
        )
        if not deleted:
            return "pod already gone"
        self.emit(run.pod, "Warning", "MinerPodDeleted", f"deleted after {run.ref}")
        return f"grace {grace}s"

    def _tripped(self, policy: CompiledPolicy, until: str) -> None:
        self.state.metrics.circuit_trips.labels(policy.name).inc()
        self.state.metrics.circuit_open.labels(policy.name).set(1)
        limit = policy.spec.rate_limit
        message = (
            f"{limit.max_actions} destructive actions within {limit.window_seconds}s: "
            f"alert-only until {until}"
        )
        log.warning("MinerPolicy %s circuit open: %s", policy.name, message)
        self.emit(_policy_ref(policy.name), "Warning", "MinerCircuitOpen", message)
        try:
            body = resources.get_policy(self.api, policy.name)
            status = body.get("status") or {}
            state = self.state.policies.get(policy.name)
            conditions = statuses.policy_conditions(
                status.get("conditions") or [],
                error=state.error if state else None,
                open_until=until,
                now=format_time(self.state.clock()),
                generation=(body.get("metadata") or {}).get("generation"),
            )
            resources.patch_policy_status(
                self.api, policy.name, {"circuitOpenUntil": until, "conditions": conditions}
            )
        except errors.ApiError as err:
            log.warning("could not record the open circuit of %s: %s", policy.name, err)

    def _finish(
        self, namespace: str, name: str, phase: Phase, taken: list[str], message: str
    ) -> None:
        acted = format_time(self.state.clock())
        status = statuses.detection_status(phase, taken, message, acted)
        try:
            resources.patch_detection_status(self.api, namespace, name, status)
        except errors.NotFound:
            log.info("MinerDetection %s/%s vanished before its status was written", namespace, name)


def _policy_ref(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerPolicy",
        "metadata": {"name": name},
    }


def _container_status(pod: Mapping[str, Any], container: str | None) -> Mapping[str, Any]:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for item in status.get(key) or ():
            if isinstance(item, Mapping) and (container is None or item.get("name") == container):
                return item
    return {}


def _pod_digest(pod: Mapping[str, Any], container: str | None) -> str | None:
    image_id = str(_container_status(pod, container).get("imageID") or "")
    _, _, digest = image_id.rpartition("@")
    return digest if digest.startswith("sha256:") else None


def _pod_image(pod: Mapping[str, Any], container: str | None) -> str | None:
    spec = pod.get("spec") or {}
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for item in spec.get(key) or ():
            if isinstance(item, Mapping) and (container is None or item.get("name") == container):
                image = item.get("image")
                return str(image) if image else None
    return None

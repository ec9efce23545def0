"""Carry out the response to one MinerDetection against the API, exactly once.

Idempotence across restarts has three layers: kopf records that the creation handler finished;
the detection's ``status.phase`` leaves ``Pending`` only when the response is complete (a
detection that already has a final phase is never acted on again, whatever kopf remembers);
and each destructive step is appended to ``status.actionsTaken`` as soon as it is done, so an
operator that dies mid-way resumes with the next step. Every step is also safe to repeat (a pod
already gone, an owner already at 0, a NetworkPolicy that exists). The steps themselves are the
handlers in :data:`minerguard_operator.actions.HANDLERS`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kubernetes import client
from pydantic import ValidationError

from minerguard.api.detection import ActionTaken, Layer, MinerDetection, Phase
from minerguard.api.policy import Retention, RuntimeAction
from minerguard.compiled_policy import CompiledPolicy
from minerguard.kube import errors, resources, workloads
from minerguard.timestamps import format_time
from minerguard_operator import actions
from minerguard_operator.decide import containers, planning, records, statuses
from minerguard_operator.events import Emit, policy_ref
from minerguard_operator.state import State

log = logging.getLogger(__name__)
DEFAULT_RETENTION = Retention()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the handling of one detection ended."""

    phase: Phase | None
    message: str
    folded_into: str | None = None


def _validation_message(err: ValidationError) -> str:
    first = err.errors()[0]
    field_path = ".".join(str(p) for p in first["loc"])
    return f"invalid detection: {field_path}: {first['msg']}"


class Enforcer:
    """Handles MinerDetections: dedup, plan, rate limit, act, record."""

    def __init__(
        self,
        api_factory: Callable[[], client.ApiClient],
        state: State,
        emit: Emit,
        *,
        isolation_label_guarded: bool = False,
    ) -> None:
        self._api_factory = api_factory
        self.isolation_label_guarded = isolation_label_guarded
        self._api: client.ApiClient | None = None
        self.state = state
        self.emit = emit
        self.located: Callable[[str, dict[str, Any]], None] | None = None
        """Told of the object each detection's run located, before any step acts on it: the
        investigation still knows a pod the response deletes."""
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
        taken = ActionTaken.parse_all((raw.get("status") or {}).get("actionsTaken"))
        if not taken:
            folded = self._fold(record, policy)
            if folded is not None:
                return folded
        run = actions.Run(
            self.api, self.emit, self.state.clock, detection, raw, record.ref, policy, taken
        )
        run.label_guarded = self.isolation_label_guarded
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
        doubted = actions.isolation_doubted(run)
        instead = actions.fall_through(run, planned)
        if instead is not None:
            self._step(run, instead, planned)
            planned = replace(
                planned, notes=(*planned.notes, f"Isolate not guaranteed: {instead.value} instead")
            )
        elif doubted is not None and not any(e.failed for e in run.taken):
            run.failures.append(f"Isolate not guaranteed: {doubted}")
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

    def _locate(self, run: actions.Run) -> None:
        """Read the detected object and bind the run to its uid.

        A runtime detection (the agent's) must name the node the pod runs on. With
        ``spec.podUID`` the object read by name must carry that uid, or it is not the one
        detected (a pod recreated under the same name) and nothing is done to it. Without one
        (admission and scan records; the agent always sends it) the run binds to the uid it
        read: every change carries that uid (the delete precondition, ``metadata.uid`` in each
        patch, the isolation label), so an object swapped in meanwhile is never touched.
        """
        spec = run.detection.spec
        if not spec.pod_name or spec.object_kind not in workloads.KINDS:
            return
        found = workloads.find(self.api, spec.object_kind, run.namespace, spec.pod_name)
        uid = (found or {}).get("metadata", {}).get("uid")
        if found is not None and (not uid or (spec.pod_uid and uid != spec.pod_uid)):
            found = None  # same name, different object: not the one that was detected
        node = ((found or {}).get("spec") or {}).get("nodeName")
        runtime = spec.layer is not Layer.ADMISSION and spec.object_kind == "Pod"
        if found is not None and runtime and node != spec.node:
            # An agent only sees the pods of its own node (and may only write records for its
            # node): a record about a pod elsewhere is not acted on.
            run.mismatch = f"pod runs on node {node or '-'}, not on {spec.node or '-'}"
            found = None
        run.target = found
        if spec.object_kind == "Pod":
            run.pod = found
        if found is not None and self.located is not None:
            self.located(run.ref, found)

    def _plan(self, run: actions.Run, policy_name: str) -> planning.Plan:
        spec = run.detection.spec
        pod = run.pod or {}
        labels = (pod.get("metadata") or {}).get("labels") if pod else None
        # What the pod's own object says wins over the detection's claim (exemptions match it).
        digest = containers.digest(pod, spec.container) or spec.image_digest
        policy = run.policy
        covering = self.state.policies.compiled()  # the strictest covering policy applies
        namespace_labels: dict[str, str] = {}
        if policy is not None and any(
            p.spec.namespace_selector is not None for p in (policy, *covering)
        ):
            namespace_labels = workloads.namespace_labels(self.api, run.namespace)
        target = planning.Target(
            namespace=run.namespace,
            namespace_labels=namespace_labels,
            pod_labels=labels if isinstance(labels, dict) else None,
            image=containers.image(pod, spec.container) or spec.image,
            digest=digest,
            command_line=spec.evidence.command_line,
        )
        return planning.plan(
            run.detection, policy, target, policy_name=policy_name, covering=covering
        )

    def _step(self, run: actions.Run, step: RuntimeAction, planned: planning.Plan) -> None:
        try:
            detail = actions.HANDLERS[step](run, planned)
        except errors.ApiError as err:
            if err.retryable:
                raise
            self.state.metrics.action_errors.labels(step.value, type(err).__name__).inc()
            run.failures.append(f"{step.value} failed: {err}")
            run.taken.append(ActionTaken(step.value, ActionTaken.FAILED))
        else:
            self.state.metrics.actions.labels(step.value).inc()
            run.taken.append(ActionTaken(step.value, detail))
        if step in planning.DESTRUCTIVE:
            resources.patch_detection_status(
                self.api,
                run.namespace,
                run.detection.metadata.name or "",
                {"actionsTaken": [str(entry) for entry in run.taken]},
            )

    def _tripped(self, policy: CompiledPolicy, until: str) -> None:
        self.state.metrics.circuit_trips.labels(policy.name).inc()
        self.state.metrics.circuit_open.labels(policy.name).set(1)
        limit = policy.spec.rate_limit
        message = (
            f"{limit.max_actions} destructive actions within {limit.window_seconds}s: "
            f"alert-only until {until}"
        )
        log.warning("MinerPolicy %s circuit open: %s", policy.name, message)
        self.emit(policy_ref(policy.name), "Warning", "MinerCircuitOpen", message)
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
        self, namespace: str, name: str, phase: Phase, taken: list[ActionTaken], message: str
    ) -> None:
        acted = format_time(self.state.clock())
        status = statuses.detection_status(phase, taken, message, acted)
        try:
            resources.patch_detection_status(self.api, namespace, name, status)
        except errors.NotFound:
            log.info("MinerDetection %s/%s vanished before its status was written", namespace, name)

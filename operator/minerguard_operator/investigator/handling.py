"""Investigating one detection: wait for the response, gather, decide, write.

See :mod:`minerguard_operator.investigator` for the design; this is its worker.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from pydantic import ValidationError

from minerguard.api.detection import MinerDetection, Phase
from minerguard.api.investigation import ImageProvenance, Investigation, InvestigationState
from minerguard.cache import BoundedCache
from minerguard.kube import errors, resources
from minerguard.timestamps import format_time, parse_time
from minerguard_operator.decide import containers
from minerguard_operator.decide import investigation as deciding
from minerguard_operator.events import Emit
from minerguard_operator.investigator import cluster
from minerguard_operator.investigator.registry_loop import RegistryLoop
from minerguard_operator.settings import OperatorSettings
from minerguard_operator.state import State

log = logging.getLogger(__name__)

WAIT_FOR_RESPONSE = 20
"""Retries (about a second each) for the response to finish before investigating anyway."""
TRANSIENT_RETRIES = 2
"""Redo an investigation this often when a part failed with an error that may pass."""
SNAPSHOTS = 1024
SNAPSHOT_SECONDS = 600.0
"""How long a located object waits for its investigation."""
INVESTIGATED = "Investigated"
"""The reason of the Event carrying an investigation's summary, on its MinerDetection."""
EVENT_MESSAGE_CHARS = 1024
"""An Event message's length at most (kopf cuts longer ones in the middle; we cut the end)."""


class NotReady(Exception):
    """The response has not finished: try again in :attr:`delay` seconds."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one investigation ended (None state: not investigated, and why)."""

    state: InvestigationState | None
    message: str


class Investigator:
    """Investigates detections on its own threads; see :mod:`minerguard_operator.investigator`."""

    def __init__(
        self,
        api_factory: Callable[[], client.ApiClient],
        state: State,
        settings: OperatorSettings,
        emit: Emit,
    ) -> None:
        self.state = state
        self.settings = settings
        self.emit = emit
        self.cluster = cluster.ClusterReader(api_factory, settings)
        self.registry = RegistryLoop(settings)
        self._snapshots: BoundedCache[str, dict[str, Any]] = BoundedCache(
            SNAPSHOTS, ttl=SNAPSHOT_SECONDS, locked=True
        )
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def remember(self, ref: str, obj: Mapping[str, Any]) -> None:
        """The object the enforcer located for detection ``ref``, before the response acts."""
        self._snapshots.put(ref, dict(obj))

    def submit(self, body: Mapping[str, Any], retry: int = 0) -> concurrent.futures.Future[Outcome]:
        """Investigate on the investigator's own threads (never kopf's handler threads).

        The caller's context goes along: kopf finds its Event poster in context variables, which
        a plain executor's threads would not see (the summary's Event would be only logged).
        """
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.settings.investigation_workers, thread_name_prefix="investigator"
                )
            executor = self._executor
        context = contextvars.copy_context()
        return executor.submit(context.run, self.handle, dict(body), retry)

    def close(self) -> None:
        """Stop the threads and the registry loop (operator cleanup)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        self.registry.close()

    def handle(self, body: Mapping[str, Any], retry: int = 0) -> Outcome:
        """Investigate one detection and write its ``status.investigation``.

        Raises:
            NotReady: the response has not finished yet.
            errors.ApiError: reading the detection or writing the result failed (kopf retries
                what may pass).
        """
        metadata = body.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "default")
        name = str(metadata.get("name") or "")
        if (body.get("status") or {}).get("investigation"):
            return Outcome(None, "already investigated")
        gathering = cluster.Gathering(self.cluster.api)
        started = self.state.clock()
        try:
            current = gathering.call(
                lambda: resources.get_detection(self.cluster.api, namespace, name)
            )
        except errors.NotFound:
            return Outcome(None, "the detection is gone (folded into another, or deleted)")
        status = current.get("status") or {}
        if status.get("investigation"):
            return Outcome(None, "already investigated")
        phase = status.get("phase")
        if phase in (None, Phase.PENDING.value):
            if retry < WAIT_FOR_RESPONSE:
                raise NotReady("the response to this detection has not finished")
            gathering.unknowns.append("the response had not finished when this was gathered")
        try:
            detection = MinerDetection.model_validate(current)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            found = self._failed(started, [f"the detection is invalid: {where}: {first['msg']}"])
        else:
            try:
                found = self._investigate(detection, gathering, started)
            except errors.ApiError as err:
                if err.retryable:
                    raise
                found = self._failed(started, [f"gathering failed: {err}"])
            except Exception as err:  # a worker thread's top level: said, counted, logged
                log.exception("investigation of %s/%s failed", namespace, name)
                found = self._failed(started, [f"gathering failed: {type(err).__name__}: {err}"])
            if gathering.transient and retry < TRANSIENT_RETRIES:
                raise errors.Unavailable("part of the investigation may be read on a retry")
        try:
            resources.patch_detection_status(
                self.cluster.api, namespace, name, {"investigation": found.to_k8s()}
            )
        except errors.NotFound:
            return Outcome(None, "the detection was deleted while it was investigated")
        self._observe(current, found)
        self._announce(current, found)
        return Outcome(found.state, found.summary)

    def _announce(self, current: Mapping[str, Any], found: Investigation) -> None:
        """The summary as an Event on the detection: ``kubectl describe md`` prints it last.

        describe sorts a custom resource's fields by name, which buries the summary among the
        findings; its Events section comes at the end, whole. Warning unless Complete: a
        partial investigation leaves a responder something to check by hand.
        """
        type_ = "Normal" if found.state is InvestigationState.COMPLETE else "Warning"
        self.emit(current, type_, INVESTIGATED, event_message(found.summary))

    def _observe(self, current: Mapping[str, Any], found: Investigation) -> None:
        metrics = self.state.metrics
        metrics.investigations.labels(found.state.value).inc()
        metrics.investigation_api_calls.inc(found.cost.api_calls)
        metrics.investigation_registry_calls.inc(found.cost.registry_calls)
        created = parse_time((current.get("metadata") or {}).get("creationTimestamp"))
        if created is not None:
            metrics.investigation_latency.observe(max(0.0, self.state.clock() - created))

    def _failed(self, started: float, unknowns: list[str]) -> Investigation:
        return Investigation(
            state=InvestigationState.FAILED,
            summary="The investigation could not be gathered; see unknowns.",
            started_at=format_time(started),
            completed_at=format_time(self.state.clock()),
            unknowns=unknowns,
        )

    def _investigate(
        self, detection: MinerDetection, gathering: cluster.Gathering, started: float
    ) -> Investigation:
        spec = detection.spec
        namespace = detection.metadata.namespace or "default"
        ref = f"{namespace}/{detection.metadata.name}"
        pod, target = self.cluster.pod(detection, self._snapshots.get(ref), gathering)
        chain = self.cluster.owners(detection, target, gathering)
        stand_in = pod
        if stand_in is None:
            for owner in chain:
                stand_in = cluster.pod_from_template(owner, spec.pod_name, namespace)
                if stand_in is not None and spec.object_kind == "Pod":
                    template = cluster.describe(owner)
                    gathering.unknowns.append(
                        f"service account, mounts and image are those of {template}'s pod "
                        "template (the pod itself could not be read)"
                    )
                if stand_in is not None:
                    break
        # The pod's own spec, else what the detection saw, else the template (it may have moved).
        image = (
            (containers.image(pod, spec.container) if pod else None)
            or spec.image
            or (containers.image(stand_in, spec.container) if stand_in else None)
        )
        digest = (containers.digest(pod, spec.container) if pod else None) or spec.image_digest
        policy = self.cluster.policy(spec.policy, gathering)
        policy_spec = policy.get("spec") or {}
        policy_status = policy.get("status") or {}
        trusted = [str(t) for t in policy_spec.get("trustedRegistries") or () if t]
        image_facts, registry_calls, cached = self._image(
            image, digest, gathering, trusted=trusted, detection=detection, pod=stand_in
        )
        facts = deciding.Facts(
            detection=detection,
            started_at=format_time(started),
            now=format_time(self.state.clock()),
            pod=pod,
            owners=chain,
            cron_jobs=self.cluster.cron_jobs(namespace, image, digest, gathering),
            same_digest_pods=self.cluster.same_digest(digest, pod, gathering),
            exec_sessions=self.cluster.exec_sessions(
                namespace, spec.pod_name, pod, detection, gathering
            ),
            image=image_facts,
            entry_points=self.cluster.entry_points(stand_in, gathering),
            anonymous_access=self.cluster.anonymous_access(policy_status, gathering),
            quarantined=cluster.quarantined(policy, digest),
            unknowns=tuple(gathering.unknowns),
            api_calls=gathering.api_calls,
            registry_calls=registry_calls,
            registry_cached=cached,
            trust_stamps=self.settings.creator_stamps_trusted,
            trust_exec_sessions=self.settings.exec_sessions_guarded,
        )
        return deciding.investigate(facts)

    def _image(
        self,
        image: str | None,
        digest: str | None,
        gathering: cluster.Gathering,
        *,
        trusted: Sequence[str],
        detection: MinerDetection,
        pod: Mapping[str, Any] | None,
    ) -> tuple[ImageProvenance | None, int, bool]:
        """The image's provenance from its registry: (provenance, registry calls, cached)."""
        if not image:
            gathering.unknowns.append("no image known: its provenance was not read")
            return None, 0, False
        creds = self.cluster.credentials(image, pod, detection, gathering)
        node = (pod or {}).get("spec", {}).get("nodeName") or detection.spec.node
        platform = self.cluster.platform(str(node) if node else None, gathering)
        return self.registry.read(
            image,
            digest,
            gathering.unknowns,
            trusted=trusted,
            executable=detection.spec.evidence.executable,
            creds=creds,
            platform=platform,
        )


def event_message(text: str) -> str:
    """``text`` cut to an Event message's bound, its start kept (the summary leads with it)."""
    if len(text) <= EVENT_MESSAGE_CHARS:
        return text
    return text[: EVENT_MESSAGE_CHARS - 1] + "\N{HORIZONTAL ELLIPSIS}"

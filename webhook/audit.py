"""The audit trail of admission: a MinerDetection (and an Event) per deny or warn.

Who asked comes from the AdmissionReview's ``userInfo``: the first question in an incident. It is
only as true as the caller: unless the webhook authenticated it (a client certificate from the API
server's CA, ``--client-ca``), anyone who can reach the port can post a review naming any user and
namespace. So every record says which it is: ``spec.requesterAuthenticated`` on the detection, and
the Event's text names the user "as claimed by the AdmissionReview (caller not authenticated)".
Records are handed to a :class:`Sink` and never awaited: the cluster sink is
:class:`minerguard.kube.reporter.Reporter` (bounded queue, retries, drop counter); without a
cluster they go to the log. A ``dryRun`` request has no side effects, so it records nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from minerguard import detections
from minerguard.api.detection import MinerDetection, OwnerReference
from minerguard.evaluate import Finding
from minerguard.kube.resources import EventSpec, ObjectRef
from webhook.review import AdmissionRequest

log = logging.getLogger(__name__)

WORKLOAD_API_VERSIONS = {
    "Pod": "v1",
    "ReplicationController": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
}


class Sink(Protocol):
    """Takes a detection and its Event without blocking; False when it had to drop it."""

    def submit(self, detection: MinerDetection | None, event: EventSpec | None = None) -> bool:
        """Queue for writing."""
        ...


class LogSink:
    """Detections as log lines, for a webhook running without a cluster."""

    def __init__(self) -> None:
        self.written = 0

    def submit(self, detection: MinerDetection | None, event: EventSpec | None = None) -> bool:
        """Log one detection."""
        if detection is not None:
            self.written += 1
            if log.isEnabledFor(logging.WARNING):
                text = detection.model_dump_json(by_alias=True, exclude_none=True)
                log.warning("detection %s", text)
        return True


def _metadata(obj: Any) -> Mapping[str, Any]:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    return metadata if isinstance(metadata, Mapping) else {}


def api_version(request: AdmissionRequest, kind: str) -> str:
    """The object's ``apiVersion``, as the API server named it for any kind not its own.

    Kubernetes' workloads by name; a workload CRD (an Argo Workflow) from the review's kind.
    """
    known = WORKLOAD_API_VERSIONS.get(kind)
    if known is not None or request.kind.kind != kind:
        return known or "v1"
    group, version = request.kind.group, request.kind.version
    return f"{group}/{version}" if group else version


def _owner(request: AdmissionRequest, kind: str) -> OwnerReference | None:
    metadata = _metadata(request.object)
    crd = kind not in WORKLOAD_API_VERSIONS and request.kind.group and kind == request.kind.kind
    if kind != "Pod" and (kind in WORKLOAD_API_VERSIONS or crd):
        # A workload is its own owner: it is what makes the pods and what to stop.
        return OwnerReference.model_validate(
            {
                "apiVersion": api_version(request, kind),
                "kind": kind,
                "name": object_name(request),
                "uid": metadata.get("uid") or None,
            }
        )
    refs = metadata.get("ownerReferences")
    for ref in refs if isinstance(refs, list) else ():
        if isinstance(ref, Mapping) and ref.get("controller") and ref.get("kind"):
            return OwnerReference.model_validate(
                {
                    "apiVersion": ref.get("apiVersion"),
                    "kind": ref.get("kind"),
                    "name": ref.get("name", ""),
                    "uid": ref.get("uid"),
                }
            )
    return None


def object_name(request: AdmissionRequest) -> str:
    """The object's name, or its generateName prefix while the API has not named it yet."""
    metadata = _metadata(request.object)
    name = request.name or metadata.get("name") or metadata.get("generateName") or ""
    return str(name)[:253]


UNAUTHENTICATED = "as claimed by the AdmissionReview (caller not authenticated)"
"""What the Event says after the user's name when the webhook did not authenticate its caller."""


def detection(
    request: AdmissionRequest, kind: str, finding: Finding, *, authenticated: bool = False
) -> MinerDetection:
    """The MinerDetection for one finding of one request.

    ``authenticated``: whether the caller proved to be the API server (then ``userInfo`` is the
    API server's word); otherwise the requester is recorded as a claim.
    """
    metadata = _metadata(request.object)
    found = detections.from_admission(
        finding,
        object_kind=kind,
        object_name=object_name(request) or None,
        namespace=request.namespace or str(metadata.get("namespace") or "default"),
        observed_at=time.time(),
        mode="Enforce" if finding.policy.enforcing else "Audit",
        labels={
            "minerguard.io/layer": "admission",
            "minerguard.io/policy": _label(finding.policy.name),
            # Decided by the system namespaces' entry (conclusive evidence only).
            **({"minerguard.io/entry": "system-namespaces"} if finding.policy.system else {}),
        },
        pod_uid=metadata.get("uid") or None,
        owner=_owner(request, kind),
        requesting_user=request.user_info.username or None,
        requesting_groups=request.user_info.groups,
        actions_requested=["Deny" if finding.denies else "Warn"],
    )
    spec = found.spec.model_copy(update={"requester_authenticated": authenticated})
    return found.model_copy(update={"spec": spec})


def event(
    request: AdmissionRequest, kind: str, finding: Finding, *, authenticated: bool = False
) -> EventSpec:
    """The Event that ``kubectl get events`` shows for a finding."""
    metadata = _metadata(request.object)
    namespace = request.namespace or str(metadata.get("namespace") or "default")
    ref = ObjectRef(
        kind=kind,
        name=object_name(request) or kind.lower(),
        namespace=namespace,
        uid=metadata.get("uid") or None,
        api_version=api_version(request, kind),
    )
    who = request.user_info.username or "unknown user"
    if not authenticated:
        who = f"{who} {UNAUTHENTICATED}"
    action = "refused" if finding.denies else "admitted with a warning"
    message = f"{action} for {who}: {finding.message()}"
    reason = "MinerAdmissionDenied" if finding.denies else "MinerAdmissionWarning"
    return EventSpec(involved=ref, reason=reason, message=message)


def _label(value: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in value)[:63]
    return cleaned.strip("-_.") or "unknown"


def record(
    sink: Sink,
    request: AdmissionRequest,
    kind: str,
    findings: tuple[Finding, ...],
    *,
    authenticated: bool = False,
) -> int:
    """Hand every finding to the sink (unless dry-run); the number dropped.

    ``authenticated`` is the server's, never the review's: whether the TLS handshake required a
    client certificate from the API server's CA (:attr:`WebhookSettings.caller_authenticated`).
    """
    if request.dry_run:
        return 0
    dropped = 0
    for finding in findings:
        found = detection(request, kind, finding, authenticated=authenticated)
        if not sink.submit(found, event(request, kind, finding, authenticated=authenticated)):
            dropped += 1
    return dropped

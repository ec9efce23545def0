"""The ``minerguard.io/created-by`` stamp: who created a pod or workload, written by ``/mutate``.

A validating webhook sees the requester of every CREATE but cannot write it anywhere the
operator finds later; ``managedFields`` name a field manager (``kubectl``, a GitOps tool), not
a person. So, opt-in (``webhook.stampCreator``), the mutating webhook stamps each pod and
workload it is asked about on CREATE with the requester's user and groups and the time, as the
JSON of :class:`minerguard.api.investigation.Actor` (:meth:`Actor.stamp`, read back by
:meth:`Actor.parse_stamp`). Pods a controller creates carry the controller's identity
(``system:serviceaccount:kube-system:replicaset-controller``): that is the truth, and the
operator walks up the owner chain to the workload a person applied.

The stamp is only worth something if nobody else can write it:

- on CREATE any value the object was sent with is replaced, never trusted (a pod template's
  annotations reach every pod, so the template cannot plant one either);
- on UPDATE a change or removal is put back to the stored value by this webhook (the chart
  calls it only for such updates, with matchConditions), so ``kubectl apply``, ``replace`` and
  server-side apply of a manifest that lacks the annotation keep working and keep the stamp;
- and a ValidatingAdmissionPolicy in the chart refuses any change the webhook did not put
  back (an outage with ``failurePolicy: Ignore``, a status subresource, a later mutating
  webhook): enforced by the API server itself, whatever happens to this process.

Workload CRDs are stamped and guarded the same way: Argo Workflows, Tekton runs, Kubeflow jobs
(:data:`minerguard.workloads.CRD_KINDS`) and the kinds registered in ``webhook.podTemplateKinds``.
Their pods are created by the engine's controller, so the object's stamp is the only record of
the person who started the run; the chart's stamp entry and guard are built from the same
table as the validating rules (a drift test holds them together).

One exception on CREATE: a ReplicaSet the deployment controller creates for its Deployment
keeps the stamp it is created with. The controller copies the Deployment's annotations onto
the ReplicaSet (the Deployment's own stamp, guarded like every other) and puts them back on
every sync: replacing it would have the controller rewrite it on every rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minerguard import workloads
from minerguard.api.investigation import CREATED_BY_ANNOTATION, Actor
from webhook.review import AdmissionRequest

STAMPED = frozenset(
    {
        ("", "Pod"),
        ("", "ReplicationController"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
    }
)
"""Kubernetes' own kinds stamped (group, kind), as the chart's entry matches; workload CRDs
are the table's (:func:`stamped`)."""
DEPLOYMENT_CONTROLLER = "system:serviceaccount:kube-system:deployment-controller"
MAX_GROUPS = 64
MAX_CHARS = 256
_ANNOTATIONS = "/metadata/annotations"


def pointer(key: str) -> str:
    """The JSON pointer (RFC 6901) of an annotation: ``~`` then ``/`` escaped, in that order."""
    return f"{_ANNOTATIONS}/{key.replace('~', '~0').replace('/', '~1')}"


KEY_PATH = pointer(CREATED_BY_ANNOTATION)
"""``/metadata/annotations/minerguard.io~1created-by``."""


def stamp(request: AdmissionRequest, time_text: str) -> str:
    """The annotation value naming the request's user as the creator."""
    user = request.user_info
    actor = Actor(
        username=user.username[:MAX_CHARS] or None,
        groups=[group[:MAX_CHARS] for group in user.groups[:MAX_GROUPS]],
        operation="CREATE",
        time=time_text,
    )
    return actor.stamp()


def stamped(group: str, kind: str, kinds: workloads.Workloads = workloads.BUILTIN) -> bool:
    """Whether objects of this kind carry the stamp: Kubernetes' own or a workload CRD's.

    ``kinds`` is the webhook's table (the built-in CRDs and ``webhook.podTemplateKinds``); the
    chart only sends what it routes, so a CRD switched off there never reaches this.
    """
    return (group, kind) in STAMPED or (group, kind) in kinds.kinds


def operations(
    request: AdmissionRequest, time_text: str, kinds: workloads.Workloads = workloads.BUILTIN
) -> list[dict[str, Any]]:
    """The JSONPatch operations stamping (CREATE) or guarding (UPDATE) one object."""
    obj = request.object
    if request.sub_resource or not stamped(request.kind.group, request.kind.kind, kinds):
        return []
    if not isinstance(obj, Mapping):
        return []
    if request.operation == "CREATE":
        if _copied_from_deployment(request, obj):
            return []
        return _set(obj, stamp(request, time_text))
    if request.operation == "UPDATE":
        before, after = annotation(request.old_object), annotation(obj)
        if before == after:
            return []
        if before is None:
            return [{"op": "remove", "path": KEY_PATH}]
        return _set(obj, before)
    return []


def annotation(obj: Any) -> str | None:
    """The stamp an object carries, as stored (None when it has none)."""
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    value = annotations.get(CREATED_BY_ANNOTATION) if isinstance(annotations, Mapping) else None
    return value if isinstance(value, str) else None


def _set(obj: Mapping[str, Any], value: str) -> list[dict[str, Any]]:
    """Set the annotation whatever the object holds (``add`` replaces a member that exists)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return [
            {
                "op": "add",
                "path": "/metadata",
                "value": {"annotations": {CREATED_BY_ANNOTATION: value}},
            }
        ]
    if not isinstance(metadata.get("annotations"), Mapping):
        return [{"op": "add", "path": _ANNOTATIONS, "value": {CREATED_BY_ANNOTATION: value}}]
    return [{"op": "add", "path": KEY_PATH, "value": value}]


def _copied_from_deployment(request: AdmissionRequest, obj: Mapping[str, Any]) -> bool:
    """A ReplicaSet the deployment controller creates for a Deployment, carrying a stamp."""
    if request.kind.kind != "ReplicaSet" or request.user_info.username != DEPLOYMENT_CONTROLLER:
        return False
    if annotation(obj) is None:
        return False
    metadata = obj.get("metadata")
    owners = metadata.get("ownerReferences") if isinstance(metadata, Mapping) else None
    return any(
        isinstance(owner, Mapping)
        and owner.get("controller") is True
        and owner.get("kind") == "Deployment"
        and str(owner.get("apiVersion", "")).startswith("apps/")
        for owner in (owners if isinstance(owners, list) else ())[:16]
    )

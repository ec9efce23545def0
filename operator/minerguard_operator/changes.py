"""The changes the operator makes to workloads, each idempotent and marked for a person.

- Pods are deleted with the policy's grace period and a uid precondition, so a StatefulSet pod
  recreated under the same name is never the one deleted.
- Owners are stopped without being deleted: Deployments, StatefulSets, ReplicaSets and
  ReplicationControllers are scaled to 0 (``spec.replicas`` is patched: not every cluster grants
  ``/scale``); Jobs and CronJobs are suspended. A DaemonSet has no replica count: its pod
  template gets a ``nodeSelector`` entry ``minerguard.io/stopped: "true"`` that no node carries,
  so the controller removes its pods everywhere and schedules none, while the object, its
  history and its spec stay for inspection. The previous value of every field changed is
  recorded in an annotation (``minerguard.io/original-*``) so the change can be reverted.
- Isolation creates a policy denying all egress of pods labelled
  ``minerguard.io/isolated=<pod uid>`` (an AdminNetworkPolicy where the cluster serves one,
  else a NetworkPolicy owned by the pod, garbage-collected with it), then labels the pod: the
  policy exists before the label applies. Whether that isolation can be trusted to hold is
  :mod:`minerguard_operator.decide.isolation`'s question, asked by the ``Isolate`` action.
- Every patch carries the uid the object was read with (``metadata.uid``): the API server
  refuses it for another object recreated under the same name.
- Quarantine appends the image digest to the policy's ``status.quarantinedImages``, which the
  webhook's policy watch compiles into ``CompiledPolicy.quarantined``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from minerguard.api.policy import QuarantinedImage
from minerguard.kube import errors, resources, workloads
from minerguard_operator import owners
from minerguard_operator.decide import isolation, marks

SCALED_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})
SUSPENDED_KINDS = frozenset({"Job", "CronJob"})
STOPPABLE_KINDS = SCALED_KINDS | SUSPENDED_KINDS | {"DaemonSet"}

_quarantine_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Stopped:
    """What stopping an owner did."""

    kind: str
    name: str
    how: str
    already: bool = False

    def describe(self) -> str:
        """``Deployment/web scaled 3->0`` for the detection's actionsTaken."""
        return f"{self.kind}/{self.name} {self.how}"


def _section(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _section(obj, "metadata")


def delete_pod(
    api: client.ApiClient, namespace: str, name: str, grace_seconds: int, uid: str | None
) -> bool:
    """Delete a pod; False when it was already gone (or replaced by a different pod)."""
    body: dict[str, Any] = {"gracePeriodSeconds": grace_seconds}
    if uid:
        body["preconditions"] = {"uid": uid}
    try:
        resources.request(
            api,
            "DELETE",
            resources.path("v1", "pods", namespace, name),
            query={"gracePeriodSeconds": grace_seconds},
            body=body,
        )
    except errors.NotFound:
        return False
    except errors.Conflict:
        return False  # uid precondition failed: a new pod of the same name, not ours
    return True


def _uid_precondition(metadata: Mapping[str, Any]) -> dict[str, str]:
    """``metadata.uid`` for a patch body: the API server refuses (409) a patch whose uid differs.

    Every object the operator changes was read and identified by uid first; carrying the uid in
    the patch keeps a different object recreated under the same name meanwhile untouched.
    """
    uid = metadata.get("uid")
    return {"uid": str(uid)} if uid else {}


def _stop_marks(detection: str, reason: str, now: str) -> dict[str, str]:
    return {marks.STOPPED_BY: detection, marks.STOPPED_AT: now, marks.STOP_REASON: reason[:256]}


def stop_owner(
    api: client.ApiClient, owner: Mapping[str, Any], detection: str, reason: str, now: str
) -> Stopped:
    """Stop an owner from making pods (see the module docstring); safe to repeat."""
    kind = str(owner.get("kind"))
    metadata = _metadata(owner)
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace") or "default")
    annotations: dict[str, str] = dict(metadata.get("annotations") or {})
    spec = _section(owner, "spec")
    stopping = _stop_marks(detection, reason, now)
    if kind in SCALED_KINDS:
        replicas = spec.get("replicas", 1)
        if replicas == 0:
            return Stopped(kind, name, "already at 0 replicas", already=True)
        stopping.setdefault(marks.ORIGINAL_REPLICAS, str(replicas))
        body: dict[str, Any] = {"spec": {"replicas": 0}}
        how = f"scaled {replicas}->0"
    elif kind in SUSPENDED_KINDS:
        if spec.get("suspend") is True:
            return Stopped(kind, name, "already suspended", already=True)
        stopping[marks.ORIGINAL_SUSPEND] = json.dumps(bool(spec.get("suspend", False)))
        body = {"spec": {"suspend": True}}
        how = "suspended"
    elif kind == "DaemonSet":
        template = (spec.get("template") or {}).get("spec") or {}
        selector = dict(template.get("nodeSelector") or {})
        if marks.STOPPED_NODE_LABEL in selector:
            return Stopped(kind, name, "already unschedulable", already=True)
        if marks.ORIGINAL_NODE_SELECTOR not in annotations:
            stopping[marks.ORIGINAL_NODE_SELECTOR] = json.dumps(selector, sort_keys=True)
        body = {
            "spec": {"template": {"spec": {"nodeSelector": {marks.STOPPED_NODE_LABEL: "true"}}}}
        }
        how = f"made unschedulable (nodeSelector {marks.STOPPED_NODE_LABEL}=true)"
    else:
        raise errors.ApiError(f"{kind} cannot be stopped by minerguard")
    if marks.ORIGINAL_REPLICAS in annotations:
        stopping.pop(marks.ORIGINAL_REPLICAS, None)  # keep the first recorded value
    body["metadata"] = {"annotations": stopping, **_uid_precondition(metadata)}
    workloads.patch(api, kind, namespace, name, body)
    return Stopped(kind, name, how)


@dataclass(frozen=True, slots=True)
class Isolated:
    """What isolating a pod did: the policy that denies its egress, and the pod's labels after."""

    policy: str
    """``NetworkPolicy/name`` or ``AdminNetworkPolicy/name``."""
    labels: Mapping[str, str]
    owner: Mapping[str, Any] | None = None
    """The controller reference the pod was released from, if it was."""


def serves_admin_network_policy(api: client.ApiClient) -> bool:
    """Whether the cluster serves AdminNetworkPolicy (API discovery of its group version)."""
    url = "/apis/" + isolation.ANP_GROUP_VERSION
    try:
        listed = resources.read_json(resources.request(api, "GET", url))
    except (errors.NotFound, errors.Forbidden):
        return False
    names = {r.get("name") for r in listed.get("resources") or () if isinstance(r, Mapping)}
    return isolation.ANP_PLURAL in names


def sweep_admin_network_policies(api: client.ApiClient) -> int:
    """Delete the isolating AdminNetworkPolicies whose pod is gone; returns how many.

    Cluster-scoped, they cannot be owned by the pod (the garbage collector does not follow a
    namespaced owner), so housekeeping does it.
    """
    if not serves_admin_network_policy(api):
        return 0
    url = resources.path(isolation.ANP_GROUP_VERSION, isolation.ANP_PLURAL)
    deleted = 0
    for anp in resources.read_json(resources.request(api, "GET", url)).get("items") or ():
        if not isinstance(anp, dict):
            continue
        annotations = _metadata(anp).get("annotations") or {}
        namespace, _, pod_name = str(annotations.get(isolation.ISOLATED_POD) or "").partition("/")
        pod = workloads.find(api, "Pod", namespace, pod_name) if pod_name else None
        if not isolation.orphaned(anp, pod):
            continue
        name = str(_metadata(anp).get("name"))
        with contextlib.suppress(errors.NotFound):
            path = resources.path(isolation.ANP_GROUP_VERSION, isolation.ANP_PLURAL, name=name)
            body = {"preconditions": {"uid": _metadata(anp).get("uid")}}
            resources.request(api, "DELETE", path, body=body)
            deleted += 1
    return deleted


def list_network_policies(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """The namespace's NetworkPolicies (to check that none of them lets the pod out)."""
    url = resources.path("networking.k8s.io/v1", "networkpolicies", namespace)
    items = resources.read_json(resources.request(api, "GET", url)).get("items")
    return [item for item in items or () if isinstance(item, dict)]


def _deny_egress(
    api: client.ApiClient, pod: Mapping[str, Any], detection: str, *, admin: bool
) -> str:
    """Create the policy denying the pod's egress (safe to repeat); ``Kind/name``."""
    metadata = _metadata(pod)
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace") or "default")
    uid = str(metadata.get("uid") or name)
    policy_name = marks.isolation_policy_name(uid)
    if admin:
        # Cluster-scoped: it cannot be owned by the (namespaced) pod, so it outlives it; its
        # name is the pod uid's hash and its annotation names the detection.
        body = isolation.admin_network_policy(policy_name, namespace, name, uid, detection)
        url = resources.path(isolation.ANP_GROUP_VERSION, isolation.ANP_PLURAL)
        kind = "AdminNetworkPolicy"
    else:
        owner_ref = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": policy_name,
                "namespace": namespace,
                "annotations": {marks.ISOLATED_BY: detection},
                "ownerReferences": [owner_ref] if metadata.get("uid") else [],
            },
            "spec": {
                "podSelector": {"matchLabels": {marks.ISOLATED: uid}},
                "policyTypes": ["Egress"],
                "egress": [],
            },
        }
        url = resources.path("networking.k8s.io/v1", "networkpolicies", namespace)
        kind = "NetworkPolicy"
    with contextlib.suppress(errors.Conflict):  # created by an earlier attempt
        resources.request(api, "POST", url, body=body)
    return f"{kind}/{policy_name}"


def isolate_pod(
    api: client.ApiClient,
    pod: Mapping[str, Any],
    detection: str,
    release_labels: Mapping[str, str] | None = None,
    *,
    admin: bool = False,
) -> Isolated:
    """Deny the pod's egress and label it; the policy exists before the label applies.

    With ``admin`` an AdminNetworkPolicy denies it (namespace policies cannot override that),
    else a NetworkPolicy owned by the pod. With ``release_labels`` (the owner's selector labels;
    may be empty) the pod is also released from its owner: those labels and its
    ownerReferences are removed (the originals kept in annotations), so an owner scaled to zero
    leaves the isolated pod for forensics.
    """
    metadata = _metadata(pod)
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace") or "default")
    uid = str(metadata.get("uid") or name)
    policy = _deny_egress(api, pod, detection, admin=admin)
    labels: dict[str, str | None] = {marks.ISOLATED: uid}
    annotations: dict[str, str] = {marks.ISOLATED_BY: detection}
    body: dict[str, Any] = {
        "metadata": {"labels": labels, "annotations": annotations, **_uid_precondition(metadata)}
    }
    owner = None
    if release_labels is not None:
        current = metadata.get("labels") or {}
        released = {k: current[k] for k in release_labels if k in current}
        if released:
            annotations[marks.RELEASED_LABELS] = json.dumps(released, sort_keys=True)
            labels.update(dict.fromkeys(released))
        owner = owners.controller_ref(pod)
        if owner is not None:
            keep = {k: owner[k] for k in ("apiVersion", "kind", "name", "uid") if k in owner}
            annotations[marks.RELEASED_OWNER] = json.dumps({**keep, "controller": True})
            body["metadata"]["ownerReferences"] = None
    patched = workloads.patch(api, "Pod", namespace, name, body)
    after = (patched.get("metadata") or {}).get("labels") or {}
    return Isolated(policy, {str(k): str(v) for k, v in after.items()}, owner)


def quarantine_image(
    api: client.ApiClient, policy: str, *, digest: str, image: str | None, detection: str, now: str
) -> bool:
    """Add a digest to the policy's quarantine list; False when it was already there."""
    entry = QuarantinedImage(digest=digest, image=image, detection=detection, since=now)
    with _quarantine_lock:
        body = resources.get_policy(api, policy)
        status = _section(body, "status")
        listed = [q for q in status.get("quarantinedImages") or () if isinstance(q, Mapping)]
        if any(q.get("digest") == digest for q in listed):
            return False
        resources.patch_policy_status(api, policy, {"quarantinedImages": [*listed, entry.to_k8s()]})
    return True

"""The controllers above a pod: what ``StopOwner`` stops and what isolation releases a pod from.

Only what the API server shows is followed: a pod's controller is its ownerReference marked
``controller: true``, and each owner read by name must carry the uid the reference names (the
API server fills it in; a new object under the old name is not the owner). Claims are never
followed: not the ``minerguard.io/released-owner`` annotation (the pod's owner can write it),
not a detection's ``spec.owner`` without a matching uid. An isolated pod released from its owner
is found again through the release the operator recorded in the detection's status
(:func:`minerguard_operator.decide.marks.released_detail`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from minerguard import workloads as workload_kinds
from minerguard.kube import errors, resources, workloads

MAX_OWNER_DEPTH = 5


def _group(api_version: object) -> str | None:
    """The API group of an ``apiVersion`` (``""`` for the core group); None when malformed."""
    if not isinstance(api_version, str) or not api_version:
        return None
    group, _, version = api_version.rpartition("/")
    return group if version else None


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference marked ``controller: true``, with a uid, of a kind minerguard reads.

    Matched by group and kind: a CRD may reuse a built-in kind's name (Volcano's
    ``batch.volcano.sh`` Job, OpenKruise's StatefulSet), and reading it as the built-in would
    find nothing (or another object) under that name.
    """
    metadata = obj.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or ():
        if not isinstance(ref, Mapping) or not ref.get("controller"):
            continue
        kind = workloads.KINDS.get(str(ref.get("kind")))
        if kind is None or _group(ref.get("apiVersion")) != _group(kind.api_version):
            continue
        if ref.get("uid") and ref.get("name"):
            return ref
    return None


def verified(
    api: client.ApiClient, kind: str, namespace: str, name: str, uid: str | None
) -> dict[str, Any] | None:
    """The object of this kind and name if it exists *and* has this uid; None otherwise."""
    if not uid or kind not in workloads.KINDS:
        return None
    found = workloads.find(api, kind, namespace, name)
    if found is None or (found.get("metadata") or {}).get("uid") != uid:
        return None
    return found


def owner_chain(api: client.ApiClient, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The controllers above an object, nearest first (ReplicaSet, then its Deployment).

    Stops at an owner that no longer exists or whose uid differs from the reference.
    """
    chain: list[dict[str, Any]] = []
    namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
    current: Mapping[str, Any] = obj
    for _ in range(MAX_OWNER_DEPTH):
        ref = controller_ref(current)
        if ref is None:
            break
        owner = verified(api, str(ref["kind"]), namespace, str(ref["name"]), str(ref["uid"]))
        if owner is None:
            break
        chain.append(owner)
        current = owner
    return chain


def crd_controller(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], str] | None:
    """The controlling ownerReference when it is a workload CRD minerguard knows, and its plural.

    Argo Workflows, Tekton runs and Kubeflow jobs make pods under their controller's identity;
    the person who submitted them is recorded on the CRD object, so an investigation reads it.
    Only kinds of the workload table (:data:`minerguard.workloads.BUILTIN`), by group and kind.
    """
    metadata = obj.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or ():
        if not isinstance(ref, Mapping) or not ref.get("controller"):
            continue
        group = _group(ref.get("apiVersion"))
        known = workload_kinds.BUILTIN.lookup(ref.get("kind"), group) if group else None
        if known is not None and ref.get("uid") and ref.get("name"):
            return ref, known.resource
    return None


def verified_crd(
    api: client.ApiClient, ref: Mapping[str, Any], plural: str, namespace: str
) -> dict[str, Any] | None:
    """The CRD object a reference names, if it exists *and* has the reference's uid."""
    url = resources.path(str(ref["apiVersion"]), plural, namespace, str(ref["name"]))
    try:
        found = resources.read_json(resources.request(api, "GET", url))
    except errors.NotFound:
        return None
    if (found.get("metadata") or {}).get("uid") != ref.get("uid"):
        return None
    return found

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

from minerguard.kube import workloads

MAX_OWNER_DEPTH = 5


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference marked ``controller: true``, with a uid, of a kind minerguard reads."""
    metadata = obj.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or ():
        if not isinstance(ref, Mapping) or not ref.get("controller"):
            continue
        if ref.get("kind") in workloads.KINDS and ref.get("uid") and ref.get("name"):
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

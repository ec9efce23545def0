"""The controllers above a pod: what ``StopOwner`` stops and what isolation releases a pod from.

A pod's controller is its ownerReference marked ``controller: true``, or, for an isolated pod
released from its owner, the reference kept in its ``minerguard.io/released-owner`` annotation,
so stopping the owner after a restart still finds it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from minerguard.kube import workloads
from minerguard_operator.decide import marks

MAX_OWNER_DEPTH = 5


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference marked ``controller: true`` of a kind minerguard reads, if any."""
    metadata = obj.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or ():
        if not isinstance(ref, Mapping) or not ref.get("controller"):
            continue
        if ref.get("kind") in workloads.KINDS:
            return ref
    released = (metadata.get("annotations") or {}).get(marks.RELEASED_OWNER)
    if released:
        try:
            ref = json.loads(released)
        except ValueError:
            return None
        if isinstance(ref, dict) and ref.get("kind") in workloads.KINDS and ref.get("name"):
            return ref
    return None


def owner_chain(api: client.ApiClient, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The controllers above an object, nearest first (ReplicaSet, then its Deployment).

    Stops at an owner that no longer exists or whose uid differs from the reference (a new
    object under the old name is not the owner).
    """
    chain: list[dict[str, Any]] = []
    namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
    current: Mapping[str, Any] = obj
    for _ in range(MAX_OWNER_DEPTH):
        ref = controller_ref(current)
        if ref is None:
            break
        owner = workloads.find(api, str(ref["kind"]), namespace, str(ref.get("name")))
        if owner is None:
            break
        uid = (owner.get("metadata") or {}).get("uid")
        if ref.get("uid") and uid and ref.get("uid") != uid:
            break
        chain.append(owner)
        current = owner
    return chain

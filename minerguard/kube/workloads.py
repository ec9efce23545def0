"""Reading and patching built-in objects (pods, the workloads that make them, namespaces) as dicts.

Objects are read as raw JSON (``_preload_content=False``): callers pass them on to pure code
(:mod:`minerguard.evaluate`, the operator's decisions) that works on the API's own camelCase
shape, and skipping the client's model round trip keeps enforcement and admission fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from minerguard.kube import errors, resources


@dataclass(frozen=True, slots=True)
class Kind:
    """Where a built-in kind lives in the API."""

    api_version: str
    plural: str


KINDS: dict[str, Kind] = {
    "Pod": Kind("v1", "pods"),
    "ReplicationController": Kind("v1", "replicationcontrollers"),
    "Deployment": Kind("apps/v1", "deployments"),
    "StatefulSet": Kind("apps/v1", "statefulsets"),
    "DaemonSet": Kind("apps/v1", "daemonsets"),
    "ReplicaSet": Kind("apps/v1", "replicasets"),
    "Job": Kind("batch/v1", "jobs"),
    "CronJob": Kind("batch/v1", "cronjobs"),
    # Read only: admission resolves private images with the pod's pull credentials.
    "Secret": Kind("v1", "secrets"),
    "ServiceAccount": Kind("v1", "serviceaccounts"),
}


def _kind(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise errors.ApiError(f"minerguard does not act on kind {kind!r}") from None


def _path(kind: str, namespace: str | None, name: str | None = None) -> str:
    spec = _kind(kind)
    return resources.path(spec.api_version, spec.plural, namespace, name)


def _typed(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    obj.setdefault("kind", kind)
    obj.setdefault("apiVersion", _kind(kind).api_version)
    return obj


def read(api: client.ApiClient, kind: str, namespace: str, name: str) -> dict[str, Any]:
    """One object; raises :class:`errors.NotFound` when it does not exist."""
    raw = resources.request(api, "GET", _path(kind, namespace, name))
    return _typed(resources.read_json(raw), kind)


def find(api: client.ApiClient, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """One object, or None when it does not exist (already deleted)."""
    try:
        return read(api, kind, namespace, name)
    except errors.NotFound:
        return None


def patch(
    api: client.ApiClient, kind: str, namespace: str, name: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """JSON merge-patch (RFC 7386: null removes a key, lists are replaced)."""
    raw = resources.request(
        api,
        "PATCH",
        _path(kind, namespace, name),
        body=dict(body),
        content_type=resources.MERGE_PATCH,
    )
    return _typed(resources.read_json(raw), kind)


def list_objects(
    api: client.ApiClient, kind: str, namespace: str | None = None
) -> list[dict[str, Any]]:
    """Every object of a kind, in one namespace or all (list items carry no kind: added)."""
    raw = resources.request(api, "GET", _path(kind, namespace))
    items = resources.read_json(raw).get("items")
    return [_typed(item, kind) for item in items or () if isinstance(item, dict)]


def namespace_labels(api: client.ApiClient, name: str) -> dict[str, str]:
    """A namespace's labels (empty when it cannot be read: coverage then uses none)."""
    try:
        raw = resources.request(api, "GET", resources.path("v1", "namespaces", name=name))
    except errors.NotFound:
        return {}
    labels = (resources.read_json(raw).get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def list_namespace_labels(api: client.ApiClient) -> dict[str, dict[str, str]]:
    """Labels of every namespace, by name."""
    raw = resources.request(api, "GET", resources.path("v1", "namespaces"))
    found: dict[str, dict[str, str]] = {}
    for item in resources.read_json(raw).get("items") or ():
        metadata = item.get("metadata") or {}
        labels = metadata.get("labels") or {}
        found[str(metadata.get("name"))] = {str(k): str(v) for k, v in labels.items()}
    return found

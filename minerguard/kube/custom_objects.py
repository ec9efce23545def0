"""The MinerDetection/MinerPolicy/kopf-peering calls that :mod:`resources` does not offer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from minerguard.api.detection import MinerDetection
from minerguard.api.meta import GROUP, VERSION
from minerguard.api.policy import MinerPolicy
from minerguard.kube import errors, resources


def _custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def _mapping(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def delete_detection(api: client.ApiClient, namespace: str, name: str) -> bool:
    """Delete a MinerDetection; False when it was already gone."""
    try:
        resources.call(
            _custom(api).delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            MinerDetection.plural,
            name,
        )
    except errors.NotFound:
        return False
    return True


def create_detection_once(api: client.ApiClient, detection: MinerDetection) -> bool:
    """Create a detection with a fixed name; False when it already exists (a repeated scan)."""
    try:
        resources.create_detection(api, detection)
    except errors.Conflict:
        return False
    return True


def get_policy(api: client.ApiClient, name: str) -> dict[str, Any]:
    """One MinerPolicy."""
    found = resources.call(
        _custom(api).get_cluster_custom_object, GROUP, VERSION, MinerPolicy.plural, name
    )
    return _mapping(found)


def get_peering(api: client.ApiClient, name: str, namespace: str | None) -> dict[str, Any]:
    """The ClusterKopfPeering (or namespaced KopfPeering) object."""
    if namespace is None:
        found = resources.call(
            _custom(api).get_cluster_custom_object, "kopf.dev", "v1", "clusterkopfpeerings", name
        )
    else:
        found = resources.call(
            _custom(api).get_namespaced_custom_object,
            "kopf.dev",
            "v1",
            namespace,
            "kopfpeerings",
            name,
        )
    return _mapping(found)

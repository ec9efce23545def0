"""Typed calls for minerguard's resources and Events; every error becomes an ApiError."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client

from minerguard.api.detection import MinerDetection
from minerguard.api.meta import GROUP, VERSION
from minerguard.api.policy import MinerPolicy
from minerguard.kube import errors

T = TypeVar("T")
COMPONENT = "minerguard"


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a client call, translating its exceptions."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:
        raise errors.translate(err) from err


def now() -> str:
    """The current time as the API writes it."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """What an Event is about."""

    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None
    api_version: str = "v1"


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A core/v1 Event to write."""

    involved: ObjectRef
    reason: str
    message: str
    type: str = "Warning"


def event_body(spec: EventSpec, source: str = COMPONENT, host: str | None = None) -> dict[str, Any]:
    """A core/v1 Event as the API wants it (``kubectl get events`` shows these)."""
    stamp = now()
    ref = spec.involved
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name[:200]}.", "namespace": ref.namespace or "default"},
        "involvedObject": {
            k: v
            for k, v in {
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
                "apiVersion": ref.api_version,
            }.items()
            if v is not None
        },
        "reason": spec.reason,
        "message": spec.message[:1024],
        "type": spec.type,
        "source": {"component": source, **({"host": host} if host else {})},
        "reportingComponent": f"{GROUP}/{source}",
        "reportingInstance": host or source,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def create_event(api: client.ApiClient, spec: EventSpec, source: str = COMPONENT) -> None:
    """Write an Event."""
    body = event_body(spec, source)
    call(client.CoreV1Api(api).create_namespaced_event, body["metadata"]["namespace"], body)


def _custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def read_json(response: Any) -> dict[str, Any]:
    """The JSON object of a raw (``_preload_content=False``) response; {} for anything else."""
    data = json.loads(response.data or b"{}")
    return data if isinstance(data, dict) else {}


def _mapping(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def create_detection(api: client.ApiClient, detection: MinerDetection) -> dict[str, Any]:
    """Create a MinerDetection in its namespace."""
    namespace = detection.metadata.namespace or "default"
    created = call(
        _custom(api).create_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        MinerDetection.plural,
        detection.to_k8s(),
    )
    return _mapping(created)


def get_detection(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """Read one MinerDetection."""
    found = call(
        _custom(api).get_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        MinerDetection.plural,
        name,
    )
    return _mapping(found)


def list_detections(api: client.ApiClient, namespace: str | None = None) -> list[dict[str, Any]]:
    """MinerDetections in a namespace, or in all of them."""
    custom = _custom(api)
    if namespace is None:
        listed = call(
            custom.list_custom_object_for_all_namespaces, GROUP, VERSION, "minerdetections"
        )
    else:
        listed = call(
            custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "minerdetections"
        )
    return list(_mapping(listed).get("items", []))


def patch_detection_status(
    api: client.ApiClient, namespace: str, name: str, status: Mapping[str, Any]
) -> None:
    """Merge-patch a MinerDetection's status."""
    call(
        _custom(api).patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        namespace,
        MinerDetection.plural,
        name,
        {"status": dict(status)},
    )


def patch_policy_status(api: client.ApiClient, name: str, status: Mapping[str, Any]) -> None:
    """Merge-patch a MinerPolicy's status."""
    call(
        _custom(api).patch_cluster_custom_object_status,
        GROUP,
        VERSION,
        MinerPolicy.plural,
        name,
        {"status": dict(status)},
    )


def delete_detection(api: client.ApiClient, namespace: str, name: str) -> bool:
    """Delete a MinerDetection; False when it was already gone."""
    try:
        call(
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
        create_detection(api, detection)
    except errors.Conflict:
        return False
    return True


def get_policy(api: client.ApiClient, name: str) -> dict[str, Any]:
    """One MinerPolicy."""
    found = call(_custom(api).get_cluster_custom_object, GROUP, VERSION, MinerPolicy.plural, name)
    return _mapping(found)


def get_peering(api: client.ApiClient, name: str, namespace: str | None) -> dict[str, Any]:
    """The ClusterKopfPeering (or namespaced KopfPeering) object."""
    if namespace is None:
        found = call(
            _custom(api).get_cluster_custom_object, "kopf.dev", "v1", "clusterkopfpeerings", name
        )
    else:
        found = call(
            _custom(api).get_namespaced_custom_object,
            "kopf.dev",
            "v1",
            namespace,
            "kopfpeerings",
            name,
        )
    return _mapping(found)

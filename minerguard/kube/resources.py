"""Plain-JSON calls for minerguard's resources and Events; every error becomes an ApiError.

Every request goes through :func:`request`, which speaks JSON over the client's own transport
(configuration, auth, TLS, retries) without its generated per-group API classes: importing
``CoreV1Api`` alone loads some 250 model modules (about 21 MiB per process) that plain dicts
never need. Only :mod:`kubernetes.watch` and the client's exceptions are used besides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from minerguard import timestamps
from minerguard.api.detection import MinerDetection
from minerguard.api.meta import API_VERSION, GROUP
from minerguard.api.policy import MinerPolicy
from minerguard.kube import errors

COMPONENT = "minerguard"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


def path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """A resource's URL path: ``/api/v1/...`` for the core group, ``/apis/GROUP/VERSION/...``."""
    parts = ["namespaces", namespace] if namespace is not None else []
    parts += [plural, *(part for part in (name, subresource) if part is not None)]
    prefix = "/apis/" if "/" in api_version else "/api/"
    return prefix + api_version + "/" + "/".join(quote(part, safe="") for part in parts)


def request(
    api: client.ApiClient,
    method: str,
    url_path: str,
    *,
    query: Mapping[str, object] | None = None,
    body: object = None,
    content_type: str = JSON,
    stream: bool = False,
    timeout: float | None = None,
) -> urllib3.BaseHTTPResponse:
    """One API call; the urllib3 response, its body already read unless ``stream``.

    Raises:
        errors.ApiError: for a non-2xx answer (via the client's ``ApiException``, so the
            ``Status`` body is parsed as ever) or an unreachable server.
    """
    headers = {"Accept": JSON, **({"Content-Type": content_type} if body is not None else {})}
    try:
        serialized = api.param_serialize(
            method,
            url_path,
            query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        answer = api.call_api(*serialized, _request_timeout=timeout)
        if not 200 <= answer.status <= 299:
            answer.read()
            raise ApiException.from_response(http_resp=answer, body=None, data=None)
        response: urllib3.BaseHTTPResponse = answer.response
        if not stream:
            response.data  # noqa: B018 - read now: errors surface here, the connection is freed
        return response
    except Exception as err:
        raise errors.translate(err) from err


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
    action: str | None = None
    """What was done (``Exec``, ``Attach``): the Event's ``action``."""
    annotations: Mapping[str, str] | None = None
    """Machine-readable detail for a reader of the Event (the exec-session JSON)."""
    instance: str | None = None
    """``reportingInstance``: which replica wrote it (a pod name); default the component."""


def event_body(spec: EventSpec, source: str = COMPONENT, host: str | None = None) -> dict[str, Any]:
    """A core/v1 Event as the API wants it (``kubectl get events`` shows these)."""
    stamp = timestamps.now()
    ref = spec.involved
    metadata: dict[str, Any] = {
        "generateName": f"{ref.name[:200]}.",
        "namespace": ref.namespace or "default",
    }
    if spec.annotations:
        metadata["annotations"] = dict(spec.annotations)
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": metadata,
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
        "reportingInstance": spec.instance or host or source,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    if spec.action:
        body["action"] = spec.action
    return body


def create_event(
    api: client.ApiClient, spec: EventSpec, source: str = COMPONENT, timeout: float | None = None
) -> None:
    """Write an Event (``timeout``: seconds, so a hung API server cannot hold the writer)."""
    body = event_body(spec, source)
    url = path("v1", "events", body["metadata"]["namespace"])
    request(api, "POST", url, body=body, timeout=timeout)


def read_json(response: Any) -> dict[str, Any]:
    """The JSON object of a response's body; {} for anything else."""
    try:
        data = json.loads(response.data or b"{}")
    except Exception as err:
        raise errors.translate(err) from err
    return data if isinstance(data, dict) else {}


def create_detection(api: client.ApiClient, detection: MinerDetection) -> dict[str, Any]:
    """Create a MinerDetection in its namespace."""
    namespace = detection.metadata.namespace or "default"
    url = path(API_VERSION, MinerDetection.plural, namespace)
    return read_json(request(api, "POST", url, body=detection.to_k8s()))


def get_detection(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """Read one MinerDetection."""
    return read_json(request(api, "GET", path(API_VERSION, MinerDetection.plural, namespace, name)))


def list_detections(api: client.ApiClient, namespace: str | None = None) -> list[dict[str, Any]]:
    """MinerDetections in a namespace, or in all of them."""
    listed = read_json(request(api, "GET", path(API_VERSION, MinerDetection.plural, namespace)))
    return [item for item in listed.get("items") or () if isinstance(item, dict)]


def patch_detection_status(
    api: client.ApiClient, namespace: str, name: str, status: Mapping[str, Any]
) -> None:
    """Merge-patch a MinerDetection's status."""
    url = path(API_VERSION, MinerDetection.plural, namespace, name, "status")
    request(api, "PATCH", url, body={"status": dict(status)}, content_type=MERGE_PATCH)


def patch_policy_status(api: client.ApiClient, name: str, status: Mapping[str, Any]) -> None:
    """Merge-patch a MinerPolicy's status."""
    url = path(API_VERSION, MinerPolicy.plural, name=name, subresource="status")
    request(api, "PATCH", url, body={"status": dict(status)}, content_type=MERGE_PATCH)


def delete_detection(api: client.ApiClient, namespace: str, name: str) -> bool:
    """Delete a MinerDetection; False when it was already gone."""
    try:
        request(api, "DELETE", path(API_VERSION, MinerDetection.plural, namespace, name))
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
    return read_json(request(api, "GET", path(API_VERSION, MinerPolicy.plural, name=name)))


def get_peering(api: client.ApiClient, name: str, namespace: str | None) -> dict[str, Any]:
    """The ClusterKopfPeering (or namespaced KopfPeering) object."""
    plural = "clusterkopfpeerings" if namespace is None else "kopfpeerings"
    return read_json(request(api, "GET", path("kopf.dev/v1", plural, namespace, name)))

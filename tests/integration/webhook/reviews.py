"""AdmissionReview documents as the API server posts them."""

from __future__ import annotations

import uuid
from typing import Any


def review(
    obj: Any,
    *,
    kind: str = "Pod",
    group: str = "",
    resource: str = "pods",
    namespace: str = "apps",
    operation: str = "CREATE",
    sub_resource: str | None = None,
    name: str = "",
    user: str = "mallory@example.com",
    groups: tuple[str, ...] = ("devs", "system:authenticated"),
    dry_run: bool = False,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": resource},
        "requestKind": {"group": group, "version": "v1", "kind": kind},
        "requestResource": {"group": group, "version": "v1", "resource": resource},
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": user, "uid": "1234", "groups": list(groups)},
        "object": obj,
        "oldObject": None,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def pod(
    *containers: dict[str, Any],
    name: str = "web",
    namespace: str = "apps",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"containers": list(containers), **spec},
    }


def container(image: str, name: str = "app", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}

"""Builders for AdmissionReviews and a reviewer with a primed image cache.

Policies come from :mod:`tests.support`.
"""

from __future__ import annotations

import uuid
from typing import Any

from minerguard.api.detection import MinerDetection
from minerguard.compiled_policy import CompiledPolicy
from minerguard.kube.resources import EventSpec
from minerguard.oci import registry
from minerguard.podspec import ImageConfig
from webhook import memo, resolve, review
from webhook.admission import Reviewer
from webhook.settings import WebhookSettings

WALLET = "4" + "A" * 94
MINER_COMMAND = ["xmrig", "-o", "stratum+tcp://pool.supportxmr.com:3333", "-u", WALLET]
CLOSED = "127.0.0.1:9"  # discard port: nothing listens, connections are refused at once


def pod(*containers: dict[str, Any], namespace: str = "apps", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"containers": list(containers), **spec},
    }


def container(name: str = "c", image: str = "nginx:1.27", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}


def request(
    obj: Any,
    *,
    kind: str = "Pod",
    group: str = "",
    resource: str = "pods",
    sub_resource: str = "",
    operation: str = "CREATE",
    namespace: str = "apps",
    name: str = "",
    dry_run: bool = False,
    old: Any = None,
) -> review.AdmissionRequest:
    return review.AdmissionRequest.model_validate(
        {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "subResource": sub_resource,
            "namespace": namespace,
            "name": name,
            "operation": operation,
            "userInfo": {
                "username": "mallory@example.com",
                "groups": ["devs", "system:authenticated"],
            },
            "object": obj,
            "oldObject": old,
            "dryRun": dry_run,
        }
    )


def body(obj: Any, kind: str = "Pod", **request: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "apps",
            "operation": "CREATE",
            "userInfo": {"username": "mallory"},
            "object": obj,
            **request,
        },
    }


class Sink:
    """Collects what the reviewer hands to the audit trail."""

    def __init__(self) -> None:
        self.items: list[tuple[MinerDetection | None, EventSpec | None]] = []

    def submit(self, detection: MinerDetection | None, event: EventSpec | None = None) -> bool:
        self.items.append((detection, event))
        return True


def reviewer(
    policies: list[CompiledPolicy],
    images: dict[str, ImageConfig] | None = None,
    sink: Sink | None = None,
    **settings: Any,
) -> Reviewer:
    """A reviewer whose registry knows ``images`` (primed) and nothing else (refused at once)."""
    resolver = resolve.ImageResolver(registry.RegistryClient(insecure=[CLOSED]))
    for index, (image, config) in enumerate((images or {}).items()):
        digest = config.digest or f"sha256:{index:064x}"
        primed = ImageConfig(config.entrypoint, config.cmd, config.env, digest)
        for platform in (None, registry.Platform()):  # single-arch: unpinned and amd64 pods
            resolver.prime(image, platform, primed)
    fixed = tuple(policies)
    return Reviewer(
        WebhookSettings(**settings),
        memo.MemoPolicies(lambda: fixed),
        resolver,
        sink=sink or Sink(),
    )

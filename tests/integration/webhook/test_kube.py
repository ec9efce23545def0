"""The server against kmock's Kubernetes emulator: policy watch, audit trail, pull secrets."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from minerguard.kube import client
from tests.integration.webhook import oci
from tests.integration.webhook.conftest import POOL, Images, Server, ServerFactory
from tests.integration.webhook.reviews import container, pod, review
from tests.kube_emulator import EmulatorThread
from tests.support import create_policy, policy_document, wait_for

pytestmark = pytest.mark.slow
GROUP, VERSION = "minerguard.io", "v1alpha1"
MINER = pod(container("alpine", name="miner", command=["xmrig", "-o", POOL]), name="miner")


def start(serve: ServerFactory, kube: EmulatorThread, *args: str) -> Server:
    return serve("--kube-server", kube.url, "--registry-timeout", "2", *args, env=oci.LOOPBACK_ENV)


def test_policies_are_watched_and_swapped(kube: EmulatorThread, serve: ServerFactory) -> None:
    custom = k8s.CustomObjectsApi(client.api_client(kube.url))
    server = start(serve, kube)
    first = server.review(review(MINER))
    assert 'MinerPolicy "default"' in first["status"]["message"]  # no policy in the cluster yet

    create_policy(custom, "team", mode="Audit")

    def audited() -> dict[str, Any] | None:
        answer = server.review(review(MINER))
        return answer if answer["allowed"] else None

    warned = wait_for(audited)
    assert 'MinerPolicy "team"' in warned["warnings"][0]

    custom.patch_cluster_custom_object(
        GROUP,
        VERSION,
        "minerpolicies",
        "team",
        {"spec": {"mode": "Enforce"}, "metadata": {"generation": 2}},
    )

    def refused() -> dict[str, Any] | None:
        answer = server.review(review(MINER))
        return None if answer["allowed"] else answer

    denied = wait_for(refused)
    assert 'MinerPolicy "team"' in denied["status"]["message"]


def test_a_denial_is_recorded_with_who_asked(kube: EmulatorThread, serve: ServerFactory) -> None:
    server = start(serve, kube)
    request = review(MINER, user="alice@example.com", groups=("team-a", "system:authenticated"))
    assert server.review(request)["allowed"] is False
    found = wait_for(lambda: kube.objects(f"{GROUP}/{VERSION}/minerdetections", "apps"))
    spec = found[0]["spec"]
    assert spec["layer"] == "Admission"
    assert spec["podName"] == "miner"
    assert spec["container"] == "miner"
    assert spec["requestingUser"] == "alice@example.com"
    assert spec["requestingGroups"] == ["team-a", "system:authenticated"]
    assert spec["policy"] == "default"
    assert spec["actionsRequested"] == ["Deny"]
    assert "stratum+tcp://" in spec["evidence"]["commandLine"]
    events = wait_for(lambda: kube.objects("v1/events", "apps"))
    assert events[0]["reason"] == "MinerAdmissionDenied"
    assert "alice@example.com" in events[0]["message"]


def test_a_dry_run_writes_nothing(kube: EmulatorThread, serve: ServerFactory) -> None:
    server = start(serve, kube)
    assert server.review(review(MINER, dry_run=True))["allowed"] is False
    assert server.review(review(MINER))["allowed"] is False  # a marker that writes happen
    wait_for(lambda: kube.objects(f"{GROUP}/{VERSION}/minerdetections", "apps"))
    time.sleep(0.5)
    assert len(kube.objects(f"{GROUP}/{VERSION}/minerdetections", "apps")) == 1


def create(kube: EmulatorThread, plural: str, body: dict[str, Any]) -> None:
    """A core/v1 object in namespace apps, posted as kubectl would."""
    answer = httpx.post(f"{kube.url}/api/v1/namespaces/apps/{plural}", json=body, timeout=10)
    assert answer.status_code == 201, answer.text  # Created


def _pull_secret(kube: EmulatorThread, name: str, host: str) -> None:
    config = {"auths": {host: {"username": "puller", "password": "pull-secret-pw"}}}
    create(
        kube,
        "secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
        },
    )


def test_pull_secrets_of_the_pod_and_its_service_account_are_used(
    kube: EmulatorThread, serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    _pull_secret(kube, "regcred", images.token)
    _pull_secret(kube, "sa-regcred", images.token)
    create(
        kube,
        "serviceaccounts",
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "builder"},
            "imagePullSecrets": [{"name": "sa-regcred"}],
        },
    )
    server = start(
        serve, kube, "--insecure-registry", images.token, "--insecure-registry", images.tokens.host
    )
    image = images.ref("private/app:1", images.token)

    anonymous = server.review(review(pod(container(image))))
    assert anonymous["allowed"] is True  # the default policy allows what it cannot verify
    assert "refused access" in anonymous["warnings"][0]

    with_secret = pod(container(image), name="p1", imagePullSecrets=[{"name": "regcred"}])
    answer = server.review(review(with_secret))
    assert answer["allowed"] is False
    assert "pool-url" in answer["status"]["message"]

    by_account = pod(container(image), name="p2", serviceAccountName="builder")
    assert server.review(review(by_account))["allowed"] is False
    assert ("repository:private/app:pull", "puller") in images.tokens.requests


def test_kubectl_exec_reads_the_target_pod(
    kube: EmulatorThread, serve: ServerFactory, tmp_path: Path
) -> None:
    create(
        kube,
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "debuggable", "labels": {"debug": "allowed"}},
            "spec": {"containers": [{"name": "shell", "image": "busybox:1.36"}]},
        },
    )
    exempting = tmp_path / "exempt.yaml"
    exempting.write_text(
        json.dumps(
            policy_document(
                "exec-guard", exemptions={"podLabels": {"matchLabels": {"debug": "allowed"}}}
            )
        )
    )
    server = start(serve, kube, "--policy-file", str(exempting))
    options = {"kind": "PodExecOptions", "apiVersion": "v1", "command": ["xmrig", "-o", POOL]}
    on_exempt = review(
        options, kind="PodExecOptions", operation="CONNECT", sub_resource="exec", name="debuggable"
    )
    assert server.review(on_exempt)["allowed"] is True
    other = review(
        options, kind="PodExecOptions", operation="CONNECT", sub_resource="exec", name="elsewhere"
    )
    refused = server.review(other)
    assert refused["allowed"] is False
    assert "exec-guard" in refused["status"]["message"]

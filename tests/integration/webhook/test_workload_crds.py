"""Workload CRDs and the system namespaces' entry, through the real webhook process.

An Argo Workflow and a Tekton TaskRun carrying a miner are refused as a Pod would be, their
benign twins admitted; a user-registered CRD is judged at the paths its registration names;
``/validate/system`` refuses a conclusive miner in kube-system and admits a weak one, in a
series and an audit annotation of its own, while ``/validate`` keeps leaving kube-system alone.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.integration.webhook.conftest import POOL, ServerFactory
from tests.integration.webhook.reviews import container, pod, review

pytestmark = pytest.mark.slow

WALLET = "49ziYBCuc6bwRRpC2i57UiJo8kt4KNWjM34qJ4XuxqdGDvzoXe8ohMtTSaQyeiyTSo4bZvh" + (
    "aHLL94NkSYksnFJ1tUxWhZqb"
)
MINER = ["xmrig", "-o", POOL, "-u", WALLET, "--donate-level", "1"]
WEAK = ["/tmp/app", "-o", "stratum+tcp://10.0.0.5:3333"]


def argo(command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "build-", "namespace": "apps"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "steps": [[{"name": "compile", "template": "compile"}]],
                },
                {
                    "name": "compile",
                    "script": {
                        "image": "alpine:3.19",
                        "command": ["sh"],
                        "source": " ".join(command),
                    },
                },
            ],
        },
    }


def taskrun(command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"generateName": "test-", "namespace": "apps"},
        "spec": {
            "taskSpec": {
                "steps": [{"name": "unit", "image": "golang:1.22", "command": ["go", "test"]}],
                "sidecars": [{"name": "cache", "image": "alpine:3.19", "command": command}],
            }
        },
    }


def crd_review(obj: dict[str, Any], group: str, kind: str, resource: str) -> dict[str, Any]:
    return review(obj, kind=kind, group=group, resource=resource)


def test_an_argo_workflow_carrying_a_miner_is_denied_and_a_benign_one_admitted(
    serve: ServerFactory,
) -> None:
    server = serve()
    benign = server.review(
        crd_review(argo(["make", "all"]), "argoproj.io", "Workflow", "workflows")
    )
    assert benign["allowed"] is True
    denied = server.review(crd_review(argo(MINER), "argoproj.io", "Workflow", "workflows"))
    assert denied["allowed"] is False
    assert 'container "compile/main" would run a cryptominer' in denied["status"]["message"]


def test_a_tekton_taskrun_carrying_a_miner_is_denied_and_a_benign_one_admitted(
    serve: ServerFactory,
) -> None:
    server = serve()
    benign = server.review(
        crd_review(taskrun(["redis-server"]), "tekton.dev", "TaskRun", "taskruns")
    )
    assert benign["allowed"] is True
    denied = server.review(crd_review(taskrun(MINER), "tekton.dev", "TaskRun", "taskruns"))
    assert denied["allowed"] is False
    assert 'container "cache" would run a cryptominer' in denied["status"]["message"]


def test_a_registered_crd_is_judged_at_its_paths_and_an_unregistered_one_is_not(
    serve: ServerFactory,
) -> None:
    kinds = [{"group": "batch.volcano.sh", "kind": "Job", "paths": ["spec.tasks[*].template"]}]
    job = {
        "apiVersion": "batch.volcano.sh/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": "apps"},
        "spec": {
            "tasks": [
                {"name": "w", "template": {"spec": {"containers": [container("a", command=MINER)]}}}
            ]
        },
    }
    plain = serve()
    assert plain.review(crd_review(job, "batch.volcano.sh", "Job", "jobs"))["allowed"] is True
    server = serve(env={"MINERGUARD_WEBHOOK_POD_TEMPLATE_KINDS": json.dumps(kinds)})
    denied = server.review(crd_review(job, "batch.volcano.sh", "Job", "jobs"))
    assert denied["allowed"] is False
    assert 'container "w/app"' in denied["status"]["message"]


def system_pod(command: list[str]) -> dict[str, Any]:
    return pod(
        container("alpine:3.19", name="kube-proxy-helper", command=command), namespace="kube-system"
    )


def test_a_conclusive_miner_in_kube_system_is_denied_by_the_system_entry_and_a_weak_one_admitted(
    serve: ServerFactory,
) -> None:
    server = serve()
    conclusive = review(system_pod(MINER), namespace="kube-system")
    weak = review(system_pod(WEAK), namespace="kube-system")
    # The ordinary entry never judges kube-system (the chart does not even send it there).
    assert server.review(conclusive)["allowed"] is True

    answer = server.client.post("/validate/system", json=conclusive).json()["response"]
    assert answer["allowed"] is False
    assert "system namespace: conclusive" in answer["status"]["message"]
    assert answer["auditAnnotations"]["entry"] == "system-namespaces"

    admitted = server.client.post("/validate/system", json=weak).json()["response"]
    assert admitted["allowed"] is True
    assert any("not conclusive" in w for w in admitted["warnings"])

    # Ordinary namespaces are the ordinary entry's: the system entry leaves them alone.
    elsewhere = review(pod(container("alpine:3.19", command=MINER)))
    assert server.client.post("/validate/system", json=elsewhere).json()["response"]["allowed"]

    metrics = server.client.get("/metrics").text
    series = (
        r"minerguard_webhook_system_reviews_total"
        r'\{kind="Pod",operation="CREATE",verdict="(\w+)"\} 1'
    )
    assert sorted(re.findall(series, metrics)) == ["allowed", "denied", "warned"], metrics

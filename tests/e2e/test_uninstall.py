"""After `helm uninstall`: no webhook is left behind, the CRDs (and so the evidence) are kept.

Runs only after hack/e2e.sh has uninstalled the release (MINERGUARD_E2E_UNINSTALLED=1).
"""

from __future__ import annotations

import os

import pytest
from kubernetes import client

from tests.e2e import cluster

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("MINERGUARD_E2E_UNINSTALLED"),
        reason="runs after `helm uninstall` (hack/e2e.sh sets MINERGUARD_E2E_UNINSTALLED=1)",
    ),
]


def test_uninstall_leaves_no_webhook_behind(api: client.ApiClient) -> None:
    admission = cluster.typed_api(client.AdmissionregistrationV1Api, api)
    configurations = admission.list_validating_webhook_configuration()
    ours = [
        c.metadata.name
        for c in configurations.items
        if (c.metadata.labels or {}).get("app.kubernetes.io/instance") == cluster.release()
        or any(w.name.endswith(".validate.minerguard.io") for w in c.webhooks or [])
    ]
    assert ours == []


def test_after_uninstall_pods_are_admitted_again(api: client.ApiClient) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "after-uninstall"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["xmrig"]}]},
    }
    created = cluster.typed_api(client.CoreV1Api, api).create_namespaced_pod(
        "default", pod, dry_run="All"
    )
    assert created.metadata.name == "after-uninstall"


def test_the_crds_are_kept_with_the_evidence(api: client.ApiClient) -> None:
    extensions = cluster.typed_api(client.ApiextensionsV1Api, api)
    for name in ("minerpolicies.minerguard.io", "minerdetections.minerguard.io"):
        crd = extensions.read_custom_resource_definition(name)
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"

"""A pod made by a workload CRD (an Argo Workflow) is traced to the person who submitted it.

Argo's pods carry the workflow controller's identity; the human is whoever created the
Workflow, which the stamping webhook records on it. The investigation must read that owner (by
its group, kind and uid, through the workload table), not stop at "controlled by a kind
minerguard does not read".
"""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.api.investigation import CREATED_BY_ANNOTATION, Actor
from tests.integration.operator.harness import Cluster, running
from tests.integration.operator.test_investigation import investigation
from tests.kube_emulator import EmulatorThread

pytestmark = pytest.mark.slow

ARGO = "argoproj.io"
OFFLINE = "127.0.0.1:9/example/app:1"


def _serve_workflows(kube: EmulatorThread) -> None:
    kube.emu.register_crd(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"workflows.{ARGO}"},
            "spec": {
                "group": ARGO,
                "scope": "Namespaced",
                "names": {"plural": "workflows", "singular": "workflow", "kind": "Workflow"},
                "versions": [{"name": "v1alpha1", "served": True, "storage": True}],
            },
        }
    )


def _workflow(cluster: Cluster, who: Actor) -> dict[str, Any]:
    body = {
        "apiVersion": f"{ARGO}/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "nightly", "annotations": {CREATED_BY_ANNOTATION: who.stamp()}},
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": OFFLINE}}],
        },
    }
    created: dict[str, Any] = cluster.custom.create_namespaced_custom_object(
        ARGO, "v1alpha1", "apps", "workflows", body
    )
    return created


def test_a_pod_of_an_argo_workflow_names_who_submitted_the_workflow(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    _serve_workflows(kube)
    cluster.namespace("apps")
    cluster.policy(actions={"runtime": ["Alert"]})
    workflow = _workflow(cluster, Actor(username="carol@example.com", operation="CREATE"))
    cluster.pod("nightly-main-123", owner=workflow, image=OFFLINE)
    with running(kube.url, investigate=True, creator_stamps_trusted=True):
        cluster.detection("miner-wf", "nightly-main-123")
        found = investigation(cluster, "miner-wf")
    assert found["provenance"]["workloadCreatedBy"]["username"] == "carol@example.com"
    paths = {(p["kind"], p["name"]) for p in found["restartPaths"]}
    assert ("Workflow", "nightly") in paths
    assert not any("does not read" in u for u in found["unknowns"])


def test_a_crd_owner_with_another_uid_is_not_taken_for_the_pods_owner(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    _serve_workflows(kube)
    cluster.namespace("apps")
    cluster.policy(actions={"runtime": ["Alert"]})
    workflow = _workflow(cluster, Actor(username="carol@example.com", operation="CREATE"))
    impostor = {**workflow, "metadata": {**workflow["metadata"], "uid": "not-the-workflow"}}
    cluster.pod("nightly-main-456", owner=impostor, image=OFFLINE)
    with running(kube.url, investigate=True, creator_stamps_trusted=True):
        cluster.detection("miner-wf2", "nightly-main-456")
        found = investigation(cluster, "miner-wf2")
    assert found["provenance"].get("workloadCreatedBy") is None
    assert any("Workflow/nightly" in u and "no longer exists" in u for u in found["unknowns"])

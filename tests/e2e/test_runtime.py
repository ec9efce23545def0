"""Layers 2-4 in a real cluster: a miner exec'd after admission is caught and stopped."""

from __future__ import annotations

import pytest

from tests.e2e import cluster

pytestmark = pytest.mark.e2e


@pytest.mark.case("runtime-exec-later")
def test_a_miner_exec_later_is_detected_its_pod_deleted_and_its_deployment_stopped(
    case: cluster.Case,
) -> None:
    case.create("deployment-good.yaml")
    case.create("deployment-bad.yaml")
    worker = cluster.wait_for("the benign worker to run", lambda: case.pods("worker"), timeout=180)
    sleeper = cluster.wait_for("the sleeper to start", lambda: case.pods("sleeper"), timeout=180)
    worker_uid = worker[0].metadata.uid
    sleeper_name = sleeper[0].metadata.name

    # The agent reports the exec (or the behaviour) of the miner.
    detections = cluster.wait_for(
        "a runtime MinerDetection for the sleeper",
        lambda: [
            d
            for d in case.detections()
            if d["spec"].get("podName") == sleeper_name
            and d["spec"].get("layer") in {"Exec", "Behaviour", "Network"}
        ],
        timeout=180,
    )
    spec = detections[0]["spec"]
    assert spec["policy"] == "e2e-runtime-exec-later"
    assert spec["container"] == "app"
    assert "xmrig" in spec.get("evidence", {}).get("commandLine", "")

    # The operator deletes the pod and stops the Deployment from recreating it.
    cluster.wait_for(
        "the Deployment to be scaled to 0",
        lambda: case.deployment("sleeper").spec.replicas == 0,
        timeout=120,
    )
    cluster.wait_for("the miner's pod to be gone", lambda: not case.pods("sleeper"), timeout=120)

    # `kubectl get md -A` and the Events show it.
    listed = cluster.kubectl("get", "md", "-A")
    if listed is not None:
        assert listed.returncode == 0, listed.stderr
        assert sleeper_name in listed.stdout
        assert case.namespace in listed.stdout
    everywhere = case.custom.list_cluster_custom_object(
        cluster.GROUP, cluster.VERSION, "minerdetections"
    )
    assert any(d["spec"].get("podName") == sleeper_name for d in everywhere["items"])
    events = cluster.wait_for(
        "Events about the miner",
        lambda: [
            e
            for e in case.events()
            if (e.reason or "").startswith("Miner")
            and e.involved_object.name
            in {sleeper_name, "sleeper", detections[0]["metadata"]["name"]}
        ],
        timeout=60,
    )
    assert events

    # The benign workload beside it is untouched.
    worker_now = case.pods("worker")
    assert [p.metadata.uid for p in worker_now] == [worker_uid]
    assert case.deployment("worker").spec.replicas == 1
    assert not [d for d in case.detections() if d["spec"].get("podName", "").startswith("worker")]

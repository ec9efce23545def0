"""Layers 2-4 in a real cluster: a miner exec'd after admission is caught and stopped."""

from __future__ import annotations

import pytest

from tests.e2e import cluster
from tests.support import wait_for

pytestmark = pytest.mark.e2e


@pytest.mark.case("runtime-exec-later")
def test_a_miner_exec_later_is_detected_its_pod_deleted_and_its_deployment_stopped(
    case: cluster.Case,
) -> None:
    case.create("deployment-good.yaml")
    case.create("deployment-bad.yaml")
    worker = wait_for(
        lambda: case.pods("worker"), 180, what="the benign worker to run", interval=cluster.POLL
    )
    sleeper = wait_for(
        lambda: case.pods("sleeper"), 180, what="the sleeper to start", interval=cluster.POLL
    )
    worker_uid = worker[0].metadata.uid
    sleeper_name = sleeper[0].metadata.name

    # The agent reports the exec (or the behaviour) of the miner.
    detections = wait_for(
        lambda: [
            d
            for d in case.detections()
            if d["spec"].get("podName") == sleeper_name
            and d["spec"].get("layer") in {"Exec", "Behaviour", "Network"}
        ],
        180,
        what="a runtime MinerDetection for the sleeper",
        interval=cluster.POLL,
    )
    spec = detections[0]["spec"]
    assert spec["policy"] == "e2e-runtime-exec-later"
    assert spec["container"] == "app"
    assert "xmrig" in spec.get("evidence", {}).get("commandLine", "")

    # The operator deletes the pod and stops the Deployment from recreating it.
    wait_for(
        lambda: case.deployment("sleeper").spec.replicas == 0,
        120,
        what="the Deployment to be scaled to 0",
        interval=cluster.POLL,
    )
    wait_for(
        lambda: not case.pods("sleeper"),
        120,
        what="the miner's pod to be gone",
        interval=cluster.POLL,
    )

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
    about = {sleeper_name, "sleeper", detections[0]["metadata"]["name"]}
    wanted = {"MinerDetected", "MinerPodDeleted", "MinerOwnerStopped"}  # on pod and Deployment
    wait_for(
        lambda: wanted <= {e.reason for e in case.events() if e.involved_object.name in about},
        60,
        what=f"Events {sorted(wanted)} about the miner",
        interval=cluster.POLL,
    )

    # The benign workload beside it is untouched.
    worker_now = case.pods("worker")
    assert [p.metadata.uid for p in worker_now] == [worker_uid]
    assert case.deployment("worker").spec.replicas == 1
    assert not [d for d in case.detections() if d["spec"].get("podName", "").startswith("worker")]

"""A new or changed policy reports miners that are already running, as Audit detections."""

from __future__ import annotations

import pytest

from minerguard_operator.decide import marks
from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow
MINER = ["xmrig", "-o", "stratum+tcp://pool.example:3333", "-u", "wallet"]


def test_existing_miners_are_recorded_once_and_left_running(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    miner_deployment = cluster.deployment("coin", args=MINER)
    cluster.replica_set("coin-5f6d", miner_deployment)  # made by the deployment: not scanned twice
    cluster.pod("bare-miner", args=MINER)
    cluster.deployment("clean")
    cluster.pod("bare-miner", "kube-system", args=MINER)  # excluded namespace
    with running(kube.url):
        cluster.policy(actions={"runtime": ["DeletePod", "StopOwner"]})
        found = wait_for(
            lambda: (
                items
                if len(items := kube.objects("minerguard.io/v1alpha1/minerdetections")) == 2
                else None
            ),
            what="scan",
        )
        for item in found:
            cluster.settled(item["metadata"]["name"], item["metadata"]["namespace"])
        cluster.custom.patch_cluster_custom_object(
            "minerguard.io", "v1alpha1", "minerpolicies", "default", {"spec": {"dryRun": True}}
        )
        wait_for(lambda: cluster.events("default", "MinerScanFindings"), what="scan event")
    detections = kube.objects("minerguard.io/v1alpha1/minerdetections")
    assert sorted((d["spec"]["objectKind"], d["spec"]["podName"]) for d in detections) == [
        ("Deployment", "coin"),
        ("Pod", "bare-miner"),
    ]
    for detection in detections:
        assert detection["spec"]["mode"] == "Audit"
        assert detection["metadata"]["labels"] == {marks.SCAN: "default"}
        assert cluster.detection_status(detection["metadata"]["name"])["phase"] == "Alerted"
    assert cluster.exists("Pod", "bare-miner")
    assert (
        cluster.raw(cluster.apps.read_namespaced_deployment("coin", "apps"))["spec"]["replicas"]
        == 3
    )

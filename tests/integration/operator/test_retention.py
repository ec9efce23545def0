"""Dedup folds repeats into the first detection; TTL expiry keeps etcd from filling up."""

from __future__ import annotations

import pytest

from minerguard.timestamps import format_time
from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow


def test_repeats_within_the_window_increment_the_first_detection(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions={"runtime": ["Alert"]}, retention={"dedupWindowSeconds": 600})
    cluster.pod("p1")
    with running(kube.url):
        cluster.detection("first", "p1")
        cluster.settled("first")
        for index in range(8):  # handled concurrently: the count must still only go up
            cluster.detection(f"again-{index}", "p1")
        wait_for(
            lambda: all(cluster.get_detection(f"again-{i}") is None for i in range(8)),
            what="folded",
        )
        wait_for(
            lambda: cluster.detection_status("first").get("occurrences") == 9, what="occurrences"
        )
        assert cluster.detection_status("first")["lastSeen"]  # when it last came back
        cluster.detection("other-reason", "p1", signal="cpu-saturation")
        assert cluster.settled("other-reason")["phase"] == "Alerted"
    assert len(cluster.events("apps", "MinerDetected", "p1")) == 2


def test_repeats_fold_into_the_original_after_a_restart(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions={"runtime": ["Alert"]})
    cluster.pod("p1")
    with running(kube.url):
        cluster.detection("first", "p1")
        cluster.settled("first")
    with running(kube.url):
        cluster.detection("again", "p1")
        wait_for(
            lambda: cluster.detection_status("first").get("occurrences") == 2, what="occurrences"
        )
        wait_for(lambda: cluster.get_detection("again") is None, what="folded")


def test_detections_expire_after_the_policy_ttl(kube: EmulatorThread, cluster: Cluster) -> None:
    cluster.policy(actions={"runtime": ["Alert"]}, retention={"ttlSeconds": 3600})
    old = format_time(__import__("time").time() - 7200)
    cluster.detection("old", "p1", metadata={"creationTimestamp": old})
    cluster.detection(
        "orphan-old", "p2", policy="deleted-policy", metadata={"creationTimestamp": old}
    )
    with running(kube.url):
        cluster.detection("new", "p3")
        wait_for(lambda: cluster.get_detection("old") is None, what="expiry")
        policy = wait_for(
            lambda: (
                (p := cluster.get_policy())["status"].get("counts", {}).get("detections") == 1 and p
            ),
            what="counts",
        )
    assert cluster.get_detection("new") is not None
    assert cluster.get_detection("orphan-old") is not None  # the default TTL is 7 days
    assert policy["status"]["counts"]["detections"] == 1

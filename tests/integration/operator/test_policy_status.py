"""MinerPolicy validation: conditions name the field; the last good generation stays in force."""

from __future__ import annotations

import pytest

from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow


def test_an_invalid_policy_is_reported_with_the_offending_field(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    with running(kube.url) as operator:
        cluster.policy("bad", signatures={"argumentPatterns": ["(a)\\1"]})
        policy = wait_for(
            lambda: (p := cluster.get_policy("bad")).get("status", {}).get("conditions") and p,
            what="status",
        )
        wait_for(lambda: cluster.events("default", "MinerPolicyInvalid"), what="event")
        invalid = operator.runtime.state.metrics.policies_invalid._value.get()
    ready = next(c for c in policy["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "InvalidSpec"
    assert ready["message"].startswith("spec.signatures.argumentPatterns[0]:")
    assert policy["status"]["observedGeneration"] == 1
    assert invalid == 1


def test_a_valid_policy_reports_ready_and_counts(kube: EmulatorThread, cluster: Cluster) -> None:
    cluster.pod("p1")
    with running(kube.url):
        cluster.policy(actions={"runtime": ["Alert", "DeletePod"]})
        cluster.detection("d1", "p1")
        policy = wait_for(
            lambda: (
                (p := cluster.get_policy()).get("status", {}).get("counts", {}).get("actions") == 1
                and p
            ),
            what="counts",
        )
    status = policy["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "CircuitOpen": "False",
        "AccessReviewed": "True",  # the RBAC bindings were read for status.anonymousAccess
    }
    assert status["counts"] == {"detections": 1, "actions": 1, "suppressedActions": 0}
    assert status["signatureCount"] > 100
    assert "circuitOpenUntil" not in status

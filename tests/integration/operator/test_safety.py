"""The rate limit: a storm of detections switches a policy to alert-only, and says so."""

from __future__ import annotations

import pytest

from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow


def test_a_storm_trips_the_circuit_and_the_policy_says_so(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(
        actions={"runtime": ["Alert", "DeletePod"]},
        rateLimit={"maxActions": 2, "windowSeconds": 600},
    )
    for index in range(5):
        cluster.pod(f"p{index}")
    with running(kube.url) as operator:
        for index in range(5):
            cluster.detection(f"d{index}", f"p{index}")
        phases = [cluster.settled(f"d{index}")["phase"] for index in range(5)]
        # Counts come from the operator's index of detections, which sees each phase as its
        # watch event arrives: wait for all of them, not only the last kind to land.
        expected = {"detections": 5, "actions": 2, "suppressedActions": 3}
        policy = wait_for(
            lambda: (p := cluster.get_policy()).get("status", {}).get("counts") == expected and p,
            what="counts",
        )
        trips = operator.runtime.state.metrics.circuit_trips.labels("default")._value.get()
    assert sorted(phases) == ["Acted", "Acted", "Suppressed", "Suppressed", "Suppressed"]
    assert sum(cluster.exists("Pod", f"p{i}") for i in range(5)) == 3
    status = policy["status"]
    assert status["circuitOpenUntil"].endswith("Z")
    circuit = next(c for c in status["conditions"] if c["type"] == "CircuitOpen")
    assert circuit["status"] == "True"
    assert circuit["reason"] == "RateLimitExceeded"
    assert status["counts"] == {"detections": 5, "actions": 2, "suppressedActions": 3}
    assert len(cluster.events("default", "MinerCircuitOpen")) == 1
    assert trips == 1
    suppressed = next(
        cluster.detection_status(f"d{i}") for i in range(5) if phases[i] == "Suppressed"
    )
    assert suppressed["message"].startswith("rate limit reached: alert only until ")


def test_the_open_circuit_survives_a_restart(kube: EmulatorThread, cluster: Cluster) -> None:
    cluster.policy(
        actions={"runtime": ["DeletePod"]}, rateLimit={"maxActions": 1, "windowSeconds": 600}
    )
    for index in range(3):
        cluster.pod(f"p{index}")
    with running(kube.url):
        cluster.detection("d0", "p0")
        cluster.detection("d1", "p1")
        assert {cluster.settled("d0")["phase"], cluster.settled("d1")["phase"]} == {
            "Acted",
            "Suppressed",
        }
    with running(kube.url):
        cluster.detection("d2", "p2")
        assert cluster.settled("d2")["phase"] == "Suppressed"
    assert cluster.exists("Pod", "p2")

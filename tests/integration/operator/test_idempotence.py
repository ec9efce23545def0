"""A detection is acted on once, however often the operator stops and starts."""

from __future__ import annotations

import pytest

from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow
ACTIONS = {"runtime": ["Alert", "StopOwner", "DeletePod"]}


def test_a_restarted_operator_does_not_act_again(kube: EmulatorThread, cluster: Cluster) -> None:
    cluster.policy(actions=ACTIONS)
    _, _, pod = cluster.web_deployment()
    name = pod["metadata"]["name"]
    with running(kube.url):
        cluster.detection("miner-1", name)
        first = cluster.settled("miner-1")
        wait_for(lambda: cluster.events("apps", "MinerPodDeleted"), what="deletion event")
    cluster.apps.patch_namespaced_deployment("web", "apps", {"spec": {"replicas": 2}})
    cluster.pod(name, labels={"app": "web"})  # a person restored both
    with running(kube.url) as operator:
        wait_for(lambda: operator.runtime.state.dedup, what="indices populated")
        cluster.detection("other", "unrelated-pod", signal="cpu-saturation")
        cluster.settled("other")  # the operator has caught up with everything
    assert cluster.detection_status("miner-1") == first
    assert cluster.exists("Pod", name)
    assert (
        cluster.raw(cluster.apps.read_namespaced_deployment("web", "apps"))["spec"]["replicas"] == 2
    )
    assert len(cluster.events("apps", "MinerPodDeleted")) == 1
    assert len(cluster.events("apps", "MinerDetected", name)) == 1


def test_an_operator_that_died_mid_action_resumes_with_the_next_step(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions=ACTIONS, rateLimit={"maxActions": 0})
    _, _, pod = cluster.web_deployment()
    cluster.apps.patch_namespaced_deployment("web", "apps", {"spec": {"replicas": 2}})
    # What a previous operator left behind: alerted, owner stopped, killed before DeletePod.
    cluster.detection("miner-1", pod["metadata"]["name"])
    cluster.set_status(
        "miner-1",
        {"phase": "Pending", "actionsTaken": ["Alert", "StopOwner: Deployment/web scaled 3->0"]},
    )
    with running(kube.url):
        status = cluster.settled("miner-1")
    assert status["phase"] == "Acted"  # admitted before the restart: the breaker is not asked again
    assert status["actionsTaken"] == [
        "Alert",
        "StopOwner: Deployment/web scaled 3->0",
        "DeletePod: grace 0s",
    ]
    assert not cluster.exists("Pod", pod["metadata"]["name"])
    assert (
        cluster.raw(cluster.apps.read_namespaced_deployment("web", "apps"))["spec"]["replicas"] == 2
    )
    assert not cluster.events("apps", "MinerDetected")


def test_a_detection_with_a_final_phase_is_never_acted_on(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions=ACTIONS)
    cluster.pod("p1")
    cluster.detection("miner-1", "p1")
    cluster.set_status("miner-1", {"phase": "Alerted", "message": "restored from a backup"})
    with running(kube.url):
        cluster.detection("other", "p-other", signal="cpu-saturation")
        cluster.settled("other")
    assert cluster.exists("Pod", "p1")
    assert cluster.detection_status("miner-1")["message"] == "restored from a backup"

"""Attacks on what the operator acts on: claims in pods and detections, and a throttled API.

Every object the operator changes must be identified by uid from the API, never from a claim
(an annotation a tenant can write on its own pod, an owner or digest named in a detection). And
an API server that says "slow down" is listened to. These run the real operator (kopf, the real
client) against the kmock emulator.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from minerguard_operator.decide import marks
from tests.integration.operator.harness import DIGEST, Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow

STOP = {"runtime": ["Alert", "StopOwner", "DeletePod"]}
OTHER_DIGEST = "sha256:" + "cd" * 32


@pytest.fixture
def cluster(kube: EmulatorThread) -> Iterator[Cluster]:
    """The real client against a fresh emulator."""
    helper = Cluster(kube.url)
    yield helper
    helper.api.close()


def _replicas(cluster: Cluster, name: str) -> int:
    deployment = cluster.raw(cluster.apps.read_namespaced_deployment(name, "apps"))
    return int(deployment["spec"]["replicas"])


def _claim(deployment: dict[str, Any], *, uid: bool) -> dict[str, Any]:
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    return {**ref, "uid": deployment["metadata"]["uid"]} if uid else ref


@pytest.mark.parametrize("with_uid", [False, True], ids=["name-only", "with-the-right-uid"])
def test_a_tenant_pod_naming_another_deployment_as_its_released_owner_does_not_stop_it(
    kube: EmulatorThread, cluster: Cluster, with_uid: bool
) -> None:
    cluster.policy(actions=STOP)
    payments = cluster.deployment("payments", replicas=5)
    evil = cluster.pod("evil", labels={"app": "evil"})
    released = json.dumps({**_claim(payments, uid=with_uid), "controller": True})
    cluster.core.patch_namespaced_pod(
        "evil", "apps", {"metadata": {"annotations": {marks.RELEASED_OWNER: released}}}
    )
    with running(kube.url):
        cluster.detection("miner-1", "evil", podUID=evil["metadata"]["uid"])
        status = cluster.settled("miner-1")
    assert _replicas(cluster, "payments") == 5
    assert "StopOwner: no owner" in status["actionsTaken"], status
    assert not cluster.exists("Pod", "evil")


@pytest.mark.parametrize("claim", ["no-uid", "wrong-uid"])
def test_a_detection_naming_an_owner_it_cannot_prove_stops_nothing(
    kube: EmulatorThread, cluster: Cluster, claim: str
) -> None:
    cluster.policy(actions=STOP)
    payments = cluster.deployment("payments", replicas=5)
    owner = _claim(payments, uid=claim != "no-uid")
    if claim == "wrong-uid":
        owner["uid"] = "00000000-0000-0000-0000-000000000000"
    with running(kube.url):
        cluster.detection("miner-1", "gone-pod", owner=owner)
        status = cluster.settled("miner-1")
    assert _replicas(cluster, "payments") == 5
    stop = next(e for e in status["actionsTaken"] if e.startswith("StopOwner"))
    assert "not verified" in stop, status


def test_a_detection_naming_the_owner_with_its_uid_still_stops_it(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions=STOP)
    payments = cluster.deployment("payments", replicas=5)
    with running(kube.url):
        cluster.detection("miner-1", "gone-pod", owner=_claim(payments, uid=True))
        status = cluster.settled("miner-1")
    assert "StopOwner: Deployment/payments scaled 5->0" in status["actionsTaken"]
    assert _replicas(cluster, "payments") == 0


def test_an_isolated_pod_released_by_the_operator_still_leads_to_its_owner_after_a_restart(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    """The release the operator records in the detection's status (its own write) is trusted."""
    cluster.policy(actions={"runtime": ["Alert", "Isolate", "StopOwner"]})
    _, replica_set, pod = cluster.web_deployment()
    name = pod["metadata"]["name"]
    rs = replica_set["metadata"]
    # What a previous operator left behind: the pod isolated and released, killed before StopOwner.
    cluster.core.patch_namespaced_pod(
        name,
        "apps",
        {
            "metadata": {
                "ownerReferences": None,
                "labels": {"app": None, marks.ISOLATED: pod["metadata"]["uid"]},
            }
        },
    )
    cluster.detection("miner-1", name, podUID=pod["metadata"]["uid"])
    detail = "Isolate: " + marks.released_detail(
        "NetworkPolicy/x", "ReplicaSet", rs["name"], rs["uid"]
    )
    cluster.set_status("miner-1", {"phase": "Pending", "actionsTaken": ["Alert", detail]})
    with running(kube.url):
        status = cluster.settled("miner-1")
    assert status["actionsTaken"][-1] == "StopOwner: Deployment/web scaled 3->0", status
    assert _replicas(cluster, "web") == 0


def test_a_record_about_a_pod_on_another_node_does_not_touch_it(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    """An agent may only write records for its own node; the pod must run there."""
    cluster.policy(actions={"runtime": ["Alert", "DeletePod"]})
    pod = cluster.pod("payments-0")
    cluster.core.patch_namespaced_pod("payments-0", "apps", {"spec": {"nodeName": "node-b"}})
    with running(kube.url):
        cluster.detection("forged", "payments-0", podUID=pod["metadata"]["uid"], node="node-a")
        forged = cluster.settled("forged")
        assert cluster.exists("Pod", "payments-0")
        cluster.detection(
            "honest", "payments-0", podUID=pod["metadata"]["uid"], node="node-b", signal="x"
        )
        honest = cluster.settled("honest")
    assert forged["actionsTaken"][-1] == "DeletePod: pod runs on node node-b, not on node-a"
    assert honest["actionsTaken"][-1] == "DeletePod: grace 0s"


def test_a_forged_image_digest_is_not_quarantined_cluster_wide(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions={"runtime": ["QuarantineImage"]})
    _, _, pod = cluster.web_deployment()  # runs DIGEST
    with running(kube.url):
        cluster.detection(
            "miner-1",
            pod["metadata"]["name"],
            podUID=pod["metadata"]["uid"],
            imageDigest=OTHER_DIGEST,
        )
        status = cluster.settled("miner-1")
    quarantined = (cluster.get_policy().get("status") or {}).get("quarantinedImages") or []
    assert OTHER_DIGEST not in [q["digest"] for q in quarantined]
    assert DIGEST not in [q["digest"] for q in quarantined]
    (entry,) = status["actionsTaken"]
    assert entry.startswith("QuarantineImage: refused"), entry
    assert OTHER_DIGEST in entry
    assert DIGEST in entry


def test_the_quarantined_digest_is_the_one_the_pod_runs(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions={"runtime": ["QuarantineImage"]})
    _, _, pod = cluster.web_deployment()
    with running(kube.url):
        cluster.detection("miner-1", pod["metadata"]["name"], podUID=pod["metadata"]["uid"])
        status = cluster.settled("miner-1")
    assert status["actionsTaken"] == [f"QuarantineImage: {DIGEST}"]


def test_a_failing_api_server_is_retried_with_growing_waits_not_every_second(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    """5xx without Retry-After: kopf used to retry every second, forever, in step.

    (A 429 or 503 *with* Retry-After is first retried by the client's urllib3 after the
    server's wait; the handler's own wait is never shorter than it either.)
    """
    cluster.policy(actions={"runtime": ["DeletePod"]})
    pod = cluster.pod("miner-0")
    seen: list[float] = []
    failing = "get /api/v1/namespaces/apps/pods/miner-0"

    def install() -> None:
        emu: Any = kube.emu
        emu[failing] << 500 << {"kind": "Status"} >> (lambda *_: seen.append(time.monotonic()))

    kube.loop.call_soon_threadsafe(install)
    with running(kube.url):
        cluster.detection("miner-1", "miner-0", podUID=pod["metadata"]["uid"])
        wait_for(lambda: seen, what="the first failed read")
        time.sleep(8.0)
        at = [round(t - seen[0], 2) for t in seen]
    waits = [b - a for a, b in itertools.pairwise(at)]
    assert len([t for t in at if t < 6.0]) <= 4, at  # every second: 6 or 7
    assert waits[2] >= 1.9, at  # the third wait is 2-4 s

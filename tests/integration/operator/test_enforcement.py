"""Each runtime action, by the real operator through kopf and the real client, on kmock."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from minerguard.api.detection import ActionTaken
from minerguard.api.policy import RuntimeAction
from minerguard.compiled_policy import compile_policy, parse_policy
from minerguard_operator.decide import marks
from tests.integration.operator.harness import DIGEST, Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow

DELETE_AND_STOP = {"runtime": ["Alert", "StopOwner", "DeletePod"], "podDeletionGraceSeconds": 5}


def test_a_detection_deletes_the_pod_and_scales_its_deployment_to_zero(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions=DELETE_AND_STOP)
    _deployment, _, pod = cluster.web_deployment()
    with running(kube.url):
        cluster.detection("miner-1", pod["metadata"]["name"])
        status = cluster.settled("miner-1")
        wait_for(lambda: cluster.events("apps", "MinerOwnerStopped"), what="owner event")
    assert status["phase"] == "Acted"
    assert status["action"] == "Alert,StopOwner,DeletePod"
    assert status["actionsTaken"] == [
        "Alert",
        "StopOwner: Deployment/web scaled 3->0",
        "DeletePod: grace 5s",
    ]
    assert status["actedAt"].endswith("Z")
    assert not cluster.exists("Pod", pod["metadata"]["name"])
    stopped = cluster.raw(cluster.apps.read_namespaced_deployment("web", "apps"))
    assert stopped["spec"]["replicas"] == 0
    annotations = stopped["metadata"]["annotations"]
    assert annotations[marks.STOPPED_BY] == "apps/miner-1"
    assert annotations[marks.ORIGINAL_REPLICAS] == "3"
    assert "pool.example:3333" in annotations[marks.STOP_REASON]
    assert cluster.events("apps", "MinerDetected", pod["metadata"]["name"])
    assert cluster.events("apps", "MinerPodDeleted", pod["metadata"]["name"])
    assert cluster.events("apps", "MinerOwnerStopped", "web")


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("StatefulSet", lambda obj: obj["spec"]["replicas"] == 0),
        (
            "DaemonSet",
            lambda obj: (
                obj["spec"]["template"]["spec"]["nodeSelector"]
                == {"disk": "ssd", marks.STOPPED_NODE_LABEL: "true"}
            ),
        ),
        ("CronJob", lambda obj: obj["spec"]["suspend"] is True),
    ],
)
def test_each_kind_of_owner_is_stopped_without_being_deleted(
    kube: EmulatorThread, cluster: Cluster, kind: str, check: Callable[[dict[str, Any]], bool]
) -> None:
    cluster.policy(actions=DELETE_AND_STOP)
    template = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {
            "containers": [{"name": "main", "image": "busybox"}],
            "nodeSelector": {"disk": "ssd"},
            "restartPolicy": "Never",
        },
    }
    read: Callable[[], dict[str, Any]]
    if kind == "StatefulSet":
        owner = cluster.raw(
            cluster.apps.create_namespaced_stateful_set(
                "apps",
                {
                    "apiVersion": "apps/v1",
                    "kind": kind,
                    "metadata": {"name": "x"},
                    "spec": {
                        "replicas": 2,
                        "serviceName": "x",
                        "selector": {"matchLabels": {"app": "x"}},
                        "template": template,
                    },
                },
            )
        )
        read = lambda: cluster.raw(cluster.apps.read_namespaced_stateful_set("x", "apps"))  # noqa: E731
        parent = owner
    elif kind == "DaemonSet":
        owner = cluster.raw(
            cluster.apps.create_namespaced_daemon_set(
                "apps",
                {
                    "apiVersion": "apps/v1",
                    "kind": kind,
                    "metadata": {"name": "x"},
                    "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template},
                },
            )
        )
        read = lambda: cluster.raw(cluster.apps.read_namespaced_daemon_set("x", "apps"))  # noqa: E731
        parent = owner
    else:
        owner = cluster.raw(
            cluster.batch.create_namespaced_cron_job(
                "apps",
                {
                    "apiVersion": "batch/v1",
                    "kind": kind,
                    "metadata": {"name": "x"},
                    "spec": {
                        "schedule": "* * * * *",
                        "jobTemplate": {"spec": {"template": template}},
                    },
                },
            )
        )
        job_body = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "x-1",
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "x",
                        "uid": owner["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {"template": template},
        }
        parent = cluster.raw(cluster.batch.create_namespaced_job("apps", job_body))
        read = lambda: cluster.raw(cluster.batch.read_namespaced_cron_job("x", "apps"))  # noqa: E731
    pod = cluster.pod("x-0", owner=parent)
    with running(kube.url):
        cluster.detection("miner-1", "x-0")
        status = cluster.settled("miner-1")
    assert status["phase"] == "Acted", status
    stopped = read()
    assert check(stopped)
    assert stopped["metadata"]["annotations"][marks.STOPPED_BY] == "apps/miner-1"
    assert not cluster.exists("Pod", pod["metadata"]["name"])
    if kind == "DaemonSet":
        original = stopped["metadata"]["annotations"][marks.ORIGINAL_NODE_SELECTOR]
        assert json.loads(original) == {"disk": "ssd"}
    if kind == "CronJob":
        job = cluster.raw(cluster.batch.read_namespaced_job("x-1", "apps"))
        assert job["spec"]["suspend"] is True


def test_isolation_denies_egress_and_keeps_the_pod_released_from_its_owner(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions={"runtime": ["Alert", "Isolate", "StopOwner", "DeletePod"]})
    _, _, pod = cluster.web_deployment()
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    with running(kube.url, isolation_label_guarded=True):  # else not guaranteed: see security
        cluster.detection("miner-1", name)
        status = cluster.settled("miner-1")
    assert status["phase"] == "Acted"
    taken = ActionTaken.parse_all(status["actionsTaken"])
    assert [entry.action for entry in taken] == [
        RuntimeAction.ALERT,
        RuntimeAction.ISOLATE,
        RuntimeAction.STOP_OWNER,
    ]
    assert "DeletePod replaced by Isolate" in status["message"]
    kept = cluster.raw(cluster.core.read_namespaced_pod(name, "apps"))
    assert kept["metadata"]["labels"] == {marks.ISOLATED: uid}
    assert "ownerReferences" not in kept["metadata"]
    assert json.loads(kept["metadata"]["annotations"][marks.RELEASED_LABELS]) == {"app": "web"}
    policy = cluster.raw(
        cluster.net.read_namespaced_network_policy(marks.isolation_policy_name(uid), "apps")
    )
    assert policy["spec"]["podSelector"] == {"matchLabels": {marks.ISOLATED: uid}}
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert not policy["spec"].get("egress")
    assert policy["metadata"]["ownerReferences"][0]["uid"] == uid
    assert (
        cluster.raw(cluster.apps.read_namespaced_deployment("web", "apps"))["spec"]["replicas"] == 0
    )


def test_quarantine_puts_the_digest_where_admission_reads_it(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions={"runtime": ["QuarantineImage"]})
    _, _, pod = cluster.web_deployment()
    with running(kube.url):
        cluster.detection("miner-1", pod["metadata"]["name"])
        status = cluster.settled("miner-1")
        wait_for(lambda: cluster.events("default", "MinerImageQuarantined"), what="policy event")
    assert status["actionsTaken"] == [f"QuarantineImage: {DIGEST}"]
    policy = cluster.get_policy()
    assert [q["digest"] for q in policy["status"]["quarantinedImages"]] == [DIGEST]
    assert policy["status"]["quarantinedImages"][0]["detection"] == "apps/miner-1"
    assert DIGEST in compile_policy(parse_policy(policy, "test")).quarantined
    assert cluster.exists("Pod", pod["metadata"]["name"])


def test_excluded_namespaces_and_exempt_pods_are_never_touched(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(
        excludedNamespaces=["kube-system", "infra"],
        exemptions={"podLabels": {"matchLabels": {"team": "research"}}},
    )
    cluster.pod("p-infra", "infra")
    cluster.pod("p-research", labels={"team": "research"})
    with running(kube.url):
        cluster.detection("d-infra", "p-infra", "infra")
        cluster.detection("d-research", "p-research")
        infra, research = cluster.settled("d-infra", "infra"), cluster.settled("d-research")
    # Excluded, but still watched as spec.systemNamespaces says: alerted, never acted on.
    assert infra["phase"] == "Alerted"
    assert "alert only (spec.systemNamespaces)" in infra["message"]
    assert research["phase"] == "Skipped"
    assert research["message"] == "exempt: pod labels are exempt"
    assert cluster.exists("Pod", "p-infra", "infra")
    assert cluster.exists("Pod", "p-research")


def test_dry_run_and_audit_only_alert(kube: EmulatorThread, cluster: Cluster) -> None:
    # each pod is covered by one of the two (the strictest covering policy would apply)
    only = {"podLabels": {"matchLabels": {"app": "p2"}}}
    cluster.policy("dry", dryRun=True, actions=DELETE_AND_STOP, exemptions=only)
    only = {"podLabels": {"matchLabels": {"app": "p1"}}}
    cluster.policy("audit", mode="Audit", actions=DELETE_AND_STOP, exemptions=only)
    cluster.pod("p1", labels={"app": "p1"})
    cluster.pod("p2", labels={"app": "p2"})
    with running(kube.url):
        cluster.detection("d1", "p1", policy="dry")
        cluster.detection("d2", "p2", policy="audit")
        dry, audit = cluster.settled("d1"), cluster.settled("d2")
    assert dry["phase"] == "Alerted"
    assert dry["message"] == "dry run: would StopOwner, DeletePod"
    assert audit["phase"] == "Alerted"
    assert audit["message"] == "Audit mode: alert only"
    assert cluster.exists("Pod", "p1")
    assert cluster.exists("Pod", "p2")
    assert cluster.events("apps", "MinerDetected", "p1")


def test_bad_objects_are_reported_not_retried_forever(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions=DELETE_AND_STOP)
    gone_owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "deleted-rs", "uid": "0000"},
    }
    cluster.pod("orphan", owner=gone_owner)
    with running(kube.url):
        cluster.custom.create_namespaced_custom_object(
            "minerguard.io",
            "v1alpha1",
            "apps",
            "minerdetections",
            {
                "apiVersion": "minerguard.io/v1alpha1",
                "kind": "MinerDetection",
                "metadata": {"name": "broken"},
                "spec": {"podName": "x"},
            },
        )
        cluster.detection("pod-gone", "never-existed")
        cluster.detection("owner-gone", "orphan")
        cluster.detection("no-policy", "orphan", policy="missing", signal="cpu-saturation")
        broken = cluster.settled("broken")
        gone, orphan, missing = (
            cluster.settled("pod-gone"),
            cluster.settled("owner-gone"),
            cluster.settled("no-policy"),
        )
    assert broken["phase"] == "Failed"
    assert broken["message"].startswith("invalid detection: spec.layer: Field required")
    assert gone["phase"] == "Acted"
    assert gone["actionsTaken"] == ["Alert", "StopOwner: no owner", "DeletePod: pod already gone"]
    assert orphan["actionsTaken"][1] == "StopOwner: owner already deleted"
    assert missing["phase"] == "Alerted"
    assert missing["message"] == 'MinerPolicy "missing" not found: alert only'


def test_a_pod_recreated_under_the_same_name_is_not_deleted(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions={"runtime": ["DeletePod"]})
    cluster.pod("db-0")
    with running(kube.url):
        cluster.detection("miner-1", "db-0", podUID="uid-of-the-old-pod")
        status = cluster.settled("miner-1")
    assert status["actionsTaken"] == ["DeletePod: pod already gone"]
    assert cluster.exists("Pod", "db-0")


def test_a_namespace_selector_covers_namespaces_by_their_labels(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.namespace("apps", {"env": "dev"})
    cluster.namespace("prod", {"env": "prod"})
    cluster.policy(
        namespaceSelector={"matchLabels": {"env": "prod"}}, actions={"runtime": ["DeletePod"]}
    )
    cluster.pod("p1", "apps")
    cluster.pod("p2", "prod")
    with running(kube.url):
        cluster.detection("d1", "p1", "apps")
        cluster.detection("d2", "p2", "prod")
        skipped = cluster.settled("d1", "apps")
        acted = cluster.settled("d2", "prod")
    assert skipped["phase"] == "Skipped"
    assert skipped["message"] == 'namespace apps is not covered by "default"'
    assert acted["phase"] == "Acted"
    assert cluster.exists("Pod", "p1", "apps")
    assert not cluster.exists("Pod", "p2", "prod")

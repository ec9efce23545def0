"""Attack: ``Isolate`` claims a pod is cut off while another NetworkPolicy lets it out.

NetworkPolicies only add permissions: any policy that selects the pod and allows egress wins
over minerguard's deny-all, and the pod's owner can remove the label that selects it. The
operator used to report such a pod "isolated" (and, since Isolate replaces DeletePod, keep it
running). Now it creates an AdminNetworkPolicy where the cluster serves one, and otherwise says
that isolation could not be guaranteed and falls through to DeletePod. These run the real
operator (kopf, the real client) against the kmock emulator.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from minerguard_operator.decide import marks
from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow

ISOLATE_OR_DELETE = {"runtime": ["Alert", "Isolate", "DeletePod"], "podDeletionGraceSeconds": 0}

ALLOW_EGRESS: dict[str, dict[str, Any]] = {
    "every-pod": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
    "by-expression": {
        "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
    },
}

ANP_RESOURCE = "policy.networking.k8s.io/v1alpha1/adminnetworkpolicies"
ANP_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "adminnetworkpolicies.policy.networking.k8s.io"},
    "spec": {
        "group": "policy.networking.k8s.io",
        "scope": "Cluster",
        "names": {
            "plural": "adminnetworkpolicies",
            "singular": "adminnetworkpolicy",
            "kind": "AdminNetworkPolicy",
            "shortNames": ["anp"],
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object"}},
                "subresources": {"status": {}},
            }
        ],
    },
}


@pytest.fixture
def cluster(kube: EmulatorThread) -> Iterator[Cluster]:
    """The real client against a fresh emulator."""
    helper = Cluster(kube.url)
    yield helper
    helper.api.close()


def _network_policy(cluster: Cluster, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
    cluster.net.create_namespaced_network_policy("apps", body)


def _serve_admin_network_policy(cluster: Cluster) -> None:
    """Create the AdminNetworkPolicy CRD, as installing network-policy-api does."""
    extensions: Any = client.ApiextensionsV1Api(cluster.api)
    extensions.create_custom_resource_definition(ANP_CRD)


@pytest.mark.parametrize("allow", sorted(ALLOW_EGRESS))
def test_isolation_is_not_claimed_when_another_policy_lets_the_pod_out(
    kube: EmulatorThread, cluster: Cluster, allow: str
) -> None:
    cluster.policy(actions=ISOLATE_OR_DELETE)
    pod = cluster.pod("miner-0")
    _network_policy(cluster, "allow-egress", ALLOW_EGRESS[allow])
    with running(kube.url, isolation_label_guarded=True):
        cluster.detection("miner-1", "miner-0", podUID=pod["metadata"]["uid"])
        status = cluster.settled("miner-1")
    isolate = next(e for e in status["actionsTaken"] if e.startswith("Isolate"))
    assert "not guaranteed" in isolate, status
    assert "allow-egress" in isolate
    assert status["actionsTaken"][-1] == "DeletePod: grace 0s", status
    assert "Isolate not guaranteed" in status["message"]
    assert not cluster.exists("Pod", "miner-0")
    assert cluster.events("apps", "MinerIsolationNotGuaranteed", "miner-0")


def test_isolation_is_not_claimed_when_the_pods_owner_can_remove_the_label(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions=ISOLATE_OR_DELETE)
    pod = cluster.pod("miner-0")
    with running(kube.url):  # no guard on the label
        cluster.detection("miner-1", "miner-0", podUID=pod["metadata"]["uid"])
        status = cluster.settled("miner-1")
    isolate = next(e for e in status["actionsTaken"] if e.startswith("Isolate"))
    assert "can remove its minerguard.io/isolated label" in isolate, status
    assert status["actionsTaken"][-1] == "DeletePod: grace 0s"
    assert not cluster.exists("Pod", "miner-0")


def test_isolation_alone_that_cannot_be_guaranteed_is_reported_failed(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions={"runtime": ["Alert", "Isolate"]})
    pod = cluster.pod("miner-0")
    _network_policy(cluster, "allow-egress", ALLOW_EGRESS["every-pod"])
    with running(kube.url, isolation_label_guarded=True):
        cluster.detection("miner-1", "miner-0", podUID=pod["metadata"]["uid"])
        status = cluster.settled("miner-1")
    assert status["phase"] == "Failed", status
    assert "Isolate not guaranteed" in status["message"]
    assert cluster.exists("Pod", "miner-0")  # the policy did not ask for more


def test_an_admin_network_policy_isolates_where_the_cluster_serves_one(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    _serve_admin_network_policy(cluster)
    time.sleep(0.2)
    cluster.policy(actions=ISOLATE_OR_DELETE)
    pod = cluster.pod("miner-0")
    uid = pod["metadata"]["uid"]
    _network_policy(cluster, "allow-egress", ALLOW_EGRESS["every-pod"])  # cannot override it
    with running(kube.url, isolation_label_guarded=True):
        cluster.detection("miner-1", "miner-0", podUID=uid)
        status = cluster.settled("miner-1")
    name = marks.isolation_policy_name(uid)
    assert status["phase"] == "Acted", status
    assert status["actionsTaken"] == ["Alert", f"Isolate: AdminNetworkPolicy/{name}"]
    assert cluster.exists("Pod", "miner-0")
    anp = cluster.custom.get_cluster_custom_object(
        "policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", name
    )
    subject = anp["spec"]["subject"]["pods"]
    assert subject["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}
    assert subject["podSelector"] == {"matchLabels": {marks.ISOLATED: uid}}
    assert [rule["action"] for rule in anp["spec"]["egress"]] == ["Deny"]
    assert anp["spec"]["priority"] == 0
    assert not cluster.exists("NetworkPolicy", name)
    assert cluster.events("apps", "MinerPodIsolated", "miner-0")
    assert anp["metadata"]["annotations"]["minerguard.io/isolated-pod"] == "apps/miner-0"


def test_an_admin_network_policy_goes_when_its_pod_is_gone(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    """Cluster-scoped, it cannot be owned by the pod: housekeeping deletes it instead."""
    _serve_admin_network_policy(cluster)
    time.sleep(0.2)
    cluster.policy(actions={"runtime": ["Alert", "Isolate"]})
    pod = cluster.pod("miner-0")
    kept = cluster.pod("other-0")
    name = marks.isolation_policy_name(pod["metadata"]["uid"])
    other = marks.isolation_policy_name(kept["metadata"]["uid"])

    def anp_exists(anp: str) -> bool:
        listed = cluster.custom.list_cluster_custom_object(*ANP_RESOURCE.split("/"))
        return any(o["metadata"]["name"] == anp for o in listed["items"])

    with running(kube.url, isolation_label_guarded=True):
        cluster.detection("miner-1", "miner-0", podUID=pod["metadata"]["uid"])
        cluster.detection("other-1", "other-0", podUID=kept["metadata"]["uid"])
        cluster.settled("miner-1")
        cluster.settled("other-1")
        assert anp_exists(name)
        cluster.core.delete_namespaced_pod("miner-0", "apps")
        wait_for(lambda: not anp_exists(name), what="the orphaned AdminNetworkPolicy deleted")
        time.sleep(1.0)  # a few more rounds of housekeeping
        assert anp_exists(other)


def test_an_isolation_that_fails_falls_through_to_deleting_the_pod(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions=ISOLATE_OR_DELETE)
    pod = cluster.pod("miner-0")

    def forbid() -> None:
        emu: Any = kube.emu
        (
            emu["post /apis/networking.k8s.io/v1/namespaces/apps/networkpolicies"]
            << 403
            << {
                "kind": "Status",
                "reason": "Forbidden",
            }
        )

    kube.loop.call_soon_threadsafe(forbid)
    with running(kube.url, isolation_label_guarded=True):
        cluster.detection("miner-1", "miner-0", podUID=pod["metadata"]["uid"])
        status = cluster.settled("miner-1")
    assert status["actionsTaken"] == ["Alert", "Isolate: failed", "DeletePod: grace 0s"], status
    assert not cluster.exists("Pod", "miner-0")

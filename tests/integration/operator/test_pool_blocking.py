"""Cluster-wide pool blocking: the real operator keeps each engine's objects and the status true.

The emulator serves whichever of AdminNetworkPolicy, CiliumClusterwideNetworkPolicy and
Calico's GlobalNetworkPolicy a test installs (from the projects' published CRDs where we hold
them, ``tests/data/schemas``), as the API server does once a CNI's CRDs are applied.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from minerguard_operator.decide import marks
from minerguard_operator.decide import network as net
from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow

SCHEMAS = Path(__file__).resolve().parents[2] / "data" / "schemas"
ANP = "policy.networking.k8s.io/v1alpha1/adminnetworkpolicies"
CCNP = "cilium.io/v2/ciliumclusterwidenetworkpolicies"
GNP_CRD = "crd.projectcalico.org/v1/globalnetworkpolicies"
TIERS_CRD = "crd.projectcalico.org/v1/tiers"
NAME = net.object_name("guard")
SMALL = {
    "builtinSignatures": False,
    "signatures": {"poolPorts": [4444]},
    "network": {"blockPoolTraffic": True},
}


def _crd(file: str) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load((SCHEMAS / file).read_text())
    return crd


def _bare_crd(group: str, version: str, kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Cluster",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [{"name": version, "served": True, "storage": True}],
        },
    }


def serve_anp(kube: EmulatorThread) -> None:
    kube.emu.register_crd(_crd("anp-standard.yaml"))


def serve_cilium(kube: EmulatorThread) -> None:
    kube.emu.register_crd(
        _bare_crd("cilium.io", "v2", "CiliumClusterwideNetworkPolicy", net.CCNP.plural)
    )


def serve_calico(kube: EmulatorThread) -> None:
    kube.emu.register_crd(_crd("calico-crd.projectcalico.org.yaml"))
    kube.emu.register_crd(_bare_crd("crd.projectcalico.org", "v1", "Tier", "tiers"))


def _objects(kube: EmulatorThread, resource: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in kube.objects(resource) if o.get("metadata")}


def _network(cluster: Cluster, name: str = "guard") -> dict[str, Any] | None:
    found = (cluster.get_policy(name).get("status") or {}).get("network")
    return found if isinstance(found, dict) else None


def _anp_ports(obj: dict[str, Any]) -> set[int]:
    return {
        p["portNumber"]["port"] for rule in obj["spec"]["egress"] for p in rule.get("ports", [])
    }


def _patch_spec(cluster: Cluster, spec: dict[str, Any], name: str = "guard") -> None:
    cluster.custom.patch_cluster_custom_object(
        "minerguard.io", "v1alpha1", "minerpolicies", name, {"spec": spec}
    )


def test_a_blocking_policy_creates_an_admin_network_policy_and_reports_it(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    serve_anp(kube)
    with running(kube.url):
        created = cluster.policy("guard", **SMALL)
        anp = wait_for(lambda: _objects(kube, ANP).get(NAME), what="the AdminNetworkPolicy")
        status = wait_for(lambda: _network(cluster), what="status.network")
    assert _anp_ports(anp) == {4444}
    assert anp["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert status["enforcement"] == "AdminNetworkPolicy"
    assert status["objects"] == [f"AdminNetworkPolicy/{NAME}"]
    assert status["blockedPorts"] == [4444]
    assert status["enforced"] is True


def test_changing_the_ports_updates_the_objects_and_turning_it_off_removes_them(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    serve_anp(kube)
    with running(kube.url):
        cluster.policy("guard", **SMALL)
        wait_for(lambda: _objects(kube, ANP).get(NAME), what="the AdminNetworkPolicy")
        _patch_spec(cluster, {"signatures": {"poolPorts": [4444, 5555]}})
        wait_for(
            lambda: _anp_ports(_objects(kube, ANP)[NAME]) == {4444, 5555}, what="ports updated"
        )
        wait_for(lambda: (_network(cluster) or {}).get("blockedPorts") == [4444, 5555])
        _patch_spec(cluster, {"network": {"blockPoolTraffic": False}})
        wait_for(lambda: NAME not in _objects(kube, ANP), what="the object removed")
        wait_for(lambda: _network(cluster) is None, what="status.network cleared")


def test_objects_minerguard_did_not_make_are_never_touched(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    """Same name, same labels but another manager, or another policy's mark: all left alone."""
    serve_anp(kube)
    spec = {"priority": 5, "subject": {"namespaces": {}}, "egress": []}
    foreign = {
        NAME: {},  # the name minerguard would use, made by someone else
        "team-block": {net.POOL_BLOCK: marks.short_hash("guard")},  # our label, not manager
        "other-policy": {net.MANAGED_BY: net.MANAGER, net.POOL_BLOCK: "0123456789"},
    }
    for name, labels in foreign.items():
        body = {
            "apiVersion": net.ANP_API,
            "kind": "AdminNetworkPolicy",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        }
        cluster.custom.create_cluster_custom_object(
            "policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", body
        )
    before = _objects(kube, ANP)
    with running(kube.url):
        cluster.policy("guard", **SMALL)
        status = wait_for(lambda: _network(cluster), what="status.network")
        _patch_spec(cluster, {"network": {"blockPoolTraffic": False}})
        wait_for(lambda: _network(cluster) is None, what="status.network cleared")
    assert _objects(kube, ANP) == before
    assert status["objects"] == []
    assert f"AdminNetworkPolicy/{NAME} exists and is not minerguard's" in status["message"]


def test_deleting_the_policy_deletes_its_objects(kube: EmulatorThread, cluster: Cluster) -> None:
    serve_anp(kube)
    with running(kube.url):
        cluster.policy("guard", **SMALL)
        wait_for(lambda: _objects(kube, ANP).get(NAME), what="the AdminNetworkPolicy")
        cluster.custom.delete_cluster_custom_object(
            "minerguard.io", "v1alpha1", "minerpolicies", "guard"
        )
        wait_for(lambda: NAME not in _objects(kube, ANP), what="the object deleted")


def test_without_any_engine_the_status_hands_blocking_to_the_nodes(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    with running(kube.url):
        cluster.policy("guard", **SMALL)
        status = wait_for(lambda: _network(cluster), what="status.network")
    assert status["enforcement"] == "Node"
    assert status["objects"] == []
    assert status["enforced"] is True


def test_cilium_is_used_where_only_cilium_is_served(kube: EmulatorThread, cluster: Cluster) -> None:
    serve_cilium(kube)
    with running(kube.url):
        cluster.policy("guard", **SMALL)
        ccnp = wait_for(lambda: _objects(kube, CCNP).get(NAME), what="the Cilium policy")
        status = wait_for(lambda: _network(cluster), what="status.network")
    assert ccnp["spec"]["enableDefaultDeny"] == {"egress": False, "ingress": False}
    assert status["enforcement"] == "Cilium"


def test_calico_gets_a_tiered_policy_through_its_crd_group(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    serve_calico(kube)
    with running(kube.url):
        cluster.policy("guard", **SMALL)
        name = f"{net.CALICO_TIER}.{NAME}"
        gnp = wait_for(lambda: _objects(kube, GNP_CRD).get(name), what="the Calico policy")
        tier = wait_for(lambda: _objects(kube, TIERS_CRD).get(net.CALICO_TIER), what="the tier")
        status = wait_for(lambda: _network(cluster), what="status.network")
    assert gnp["spec"]["egress"][0] == {
        "action": "Deny",
        "protocol": "TCP",
        "destination": {"ports": [4444]},
    }
    assert tier["spec"]["defaultAction"] == "Pass"
    assert status["enforcement"] == "Calico"


def test_audit_blocks_nothing_and_records_what_would_be_blocked(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    serve_anp(kube)
    with running(kube.url):
        cluster.policy("guard", mode="Audit", **SMALL)
        status = wait_for(lambda: _network(cluster), what="status.network")
    assert _objects(kube, ANP) == {}
    assert status["enforced"] is False
    assert status["blockedPorts"] == [4444]
    assert status["message"].startswith("mode Audit: nothing is blocked")


def test_an_open_circuit_freezes_the_blocks_as_they_were(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    """Neither widened by a change nor lifted: provoking actions must not open the pools."""
    serve_anp(kube)
    with running(kube.url) as operator:
        cluster.policy("guard", **SMALL)
        wait_for(lambda: _objects(kube, ANP).get(NAME), what="the AdminNetworkPolicy")
        operator.runtime.state.breaker.restore("guard", time.time() + 600)
        _patch_spec(cluster, {"signatures": {"poolPorts": [4444, 5555]}})

        def frozen() -> dict[str, Any] | None:
            found = _network(cluster)
            return found if found and "circuit open" in found["message"] else None

        status = wait_for(frozen, what="the frozen status")
        time.sleep(1)  # a few housekeeping rounds: still frozen
        assert _anp_ports(_objects(kube, ANP)[NAME]) == {4444}
    assert status["objects"] == [f"AdminNetworkPolicy/{NAME}"]


def test_switching_to_audit_takes_the_blocks_down_and_says_what_they_were(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    serve_anp(kube)
    with running(kube.url):
        cluster.policy("guard", **SMALL)
        wait_for(lambda: _objects(kube, ANP).get(NAME), what="the AdminNetworkPolicy")
        _patch_spec(cluster, {"mode": "Audit"})
        wait_for(lambda: NAME not in _objects(kube, ANP), what="the object removed")

        def audited() -> dict[str, Any] | None:
            found = _network(cluster)
            return found if found and found.get("enforced") is False else None

        status = wait_for(audited, what="the Audit status")
    assert status["blockedPorts"] == [4444]


def test_an_engine_asked_for_but_not_served_is_said_so_and_nothing_else_is_used(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    serve_anp(kube)
    spec = {**SMALL, "network": {"blockPoolTraffic": True, "enforcement": "Cilium"}}
    with running(kube.url):
        cluster.policy("guard", **spec)
        status = wait_for(lambda: _network(cluster), what="status.network")
    assert status.get("enforcement") is None  # a null in a merge patch removes the key
    assert "not served" in status["message"]
    assert _objects(kube, ANP) == {}


def test_a_spec_changed_while_the_handlers_run_still_reaches_the_block(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    """kopf marks the newest spec handled after its last handler; housekeeping is off here."""
    serve_anp(kube)
    with running(kube.url, housekeeping_seconds=600):
        cluster.policy("guard", **{**SMALL, "builtinSignatures": True})  # a slower scan
        wait_for(lambda: _objects(kube, ANP).get(NAME), what="the ANP", interval=0.002)
        _patch_spec(cluster, {"signatures": {"poolPorts": [4444, 6666]}})  # the scan still runs
        wait_for(
            lambda: {4444, 6666} <= _anp_ports(_objects(kube, ANP)[NAME]), what="ports updated"
        )

"""Least privilege, re-checked: each component may do what its code does, and no more.

The verbs of every component's roles are kept as a golden file
(`tests/security/golden/rbac.yaml`), so any widening shows up as a diff in review. After a
deliberate change, rewrite it with `MINERGUARD_UPDATE_GOLDEN=1 pytest <this file>`.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import yaml

from tests.integration.chart import chart

GOLDEN = pathlib.Path(__file__).parent / "golden" / "rbac.yaml"
UPDATE = os.environ.get("MINERGUARD_UPDATE_GOLDEN") == "1"

# The values whose RBAC the golden file records: the defaults and every opt-in that widens it.
CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "cluster-wide-pull-secrets": {"webhook": {"rbac": {"readImagePullSecrets": True}}},
    "pull-secret-namespaces": {"webhook": {"rbac": {"imagePullSecretNamespaces": ["payments"]}}},
    "referenced-secrets": {"webhook": {"rbac": {"readReferencedSecrets": True}}},
    "no-references": {"webhook": {"references": {"enabled": False}}},
}


def _verbs(rendered: chart.Render) -> dict[str, dict[str, str]]:
    """component -> "Kind[ namespace] group/resource[ [names]]" -> its verbs, sorted, one line."""
    found: dict[str, dict[str, set[str]]] = {}
    for manifest in rendered.of_kind("ClusterRole") + rendered.of_kind("Role"):
        component = manifest.obj["metadata"]["labels"]["app.kubernetes.io/component"]
        scope = manifest.kind
        if manifest.kind == "Role":
            scope += " " + manifest.obj["metadata"]["namespace"]
        for rule in manifest.obj.get("rules") or ():
            names = ",".join(rule.get("resourceNames") or ())
            for group in rule.get("apiGroups") or ("",):
                for resource in rule.get("resources") or ():
                    key = f"{scope} {group or 'core'}/{resource}" + (f" [{names}]" if names else "")
                    found.setdefault(component, {}).setdefault(key, set()).update(rule["verbs"])
    return {
        component: {key: " ".join(sorted(verbs)) for key, verbs in sorted(rules.items())}
        for component, rules in sorted(found.items())
    }


def _rules(values: dict[str, Any], component: str) -> dict[str, str]:
    return _verbs(chart.render(values)).get(component, {})


def test_each_components_verbs_match_the_golden_file() -> None:
    default = _verbs(chart.render())
    current = {"default": default}
    for case, values in CASES.items():  # an opt-in records only the components it changes
        if case != "default":
            found = _verbs(chart.render(values))
            current[case] = {c: v for c, v in found.items() if default.get(c) != v}
    if UPDATE:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(
            "# Every component's RBAC verbs per resource, rendered from the chart.\n"
            "# Regenerate after a deliberate change: MINERGUARD_UPDATE_GOLDEN=1 pytest "
            "tests/security/test_chart_least_privilege.py\n"
            + yaml.safe_dump(current, sort_keys=False, width=120)
        )
    expected = yaml.safe_load(GOLDEN.read_text())
    assert current == expected, (
        "RBAC changed; review the widening and rewrite the golden file with "
        "MINERGUARD_UPDATE_GOLDEN=1 pytest tests/security/test_chart_least_privilege.py"
    )


def test_the_webhook_may_create_the_events_it_writes() -> None:
    # The audit trail writes a core/v1 Event beside each admission detection (Reporter ->
    # resources.create_event: POST /api/v1/namespaces/<ns>/events); without create, every one 403s.
    assert _rules({}, "webhook")["ClusterRole core/events"] == "create"


def test_the_webhook_reads_no_secret_cluster_wide_unless_asked() -> None:
    webhook = _rules({}, "webhook")
    assert not [key for key in webhook if "secrets" in key or "serviceaccounts" in key]
    wide = _rules(CASES["cluster-wide-pull-secrets"], "webhook")
    assert wide["ClusterRole core/secrets"] == "get"


def test_pull_secrets_can_be_granted_namespace_by_namespace() -> None:
    rendered = chart.render(CASES["pull-secret-namespaces"])
    webhook = _verbs(rendered)["webhook"]
    assert webhook["Role payments core/secrets"] == "get"
    assert "ClusterRole core/secrets" not in webhook
    (binding,) = [m.obj for m in rendered.of_kind("RoleBinding")]
    assert binding["metadata"]["namespace"] == "payments"
    (subject,) = binding["subjects"]
    assert (subject["name"], subject["namespace"]) == ("mg-minerguard-webhook", chart.NAMESPACE)


def test_the_operator_holds_only_the_isolation_verbs_it_calls() -> None:
    # changes.py: _deny_egress POSTs the egress-deny policy (a Conflict means it exists);
    # list_network_policies GETs the namespace's NetworkPolicies to find one that lets the pod out
    # (NetworkPolicies only add permissions); where AdminNetworkPolicy is served, it is created
    # instead and sweep_admin_network_policies lists them and DELETEs those whose pod is gone
    # (cluster-scoped, they cannot be garbage-collected with the pod). Discovery of the group is
    # a non-resource URL every authenticated user may read. Nothing watches them.
    # network.py (cluster-wide pool blocking) GETs each rendered object to see whose it is,
    # creates it, merge-PATCHes its own ones to the rendered spec, LISTs its own by label and
    # DELETEs them; Calico's tier is created once (and got, as Calico's tiered RBAC requires).
    operator = _rules({}, "operator")
    assert operator["ClusterRole networking.k8s.io/networkpolicies"] == "create list"
    pool_block = "create delete get list patch"
    assert operator["ClusterRole policy.networking.k8s.io/adminnetworkpolicies"] == pool_block
    assert operator["ClusterRole cilium.io/ciliumclusterwidenetworkpolicies"] == pool_block
    for group in ("projectcalico.org", "crd.projectcalico.org"):
        assert operator[f"ClusterRole {group}/globalnetworkpolicies"] == pool_block
        assert operator[f"ClusterRole {group}/tiers"] == "create get"
    assert operator["ClusterRole projectcalico.org/tier.globalnetworkpolicies"] == pool_block
    assert not any("update" in verbs for key, verbs in operator.items() if "network" in key)


def test_no_component_patches_events_or_uses_the_events_api_group() -> None:
    for component, rules in _verbs(chart.render()).items():
        for key, verbs in rules.items():
            assert "events.k8s.io/" not in key, component
            if key.endswith("core/events"):
                # Only the operator reads them: the investigation lists the webhook's
                # exec-session Events in a detection's namespace.
                assert verbs == ("create list" if component == "operator" else "create"), component


def test_the_operator_only_reads_what_entry_points_need_and_asks_the_authorizer() -> None:
    # exposure.py lists Services and Ingresses of the pod's namespace, Gateway API routes and
    # Gateways, every (Cluster)RoleBinding for anonymous or everyone subjects and GETs the roles
    # bound to them; it POSTs one SubjectAccessReview per access check. It changes none of them.
    operator = _rules({}, "operator")
    for key in (
        "core/services",
        "networking.k8s.io/ingresses",
        "gateway.networking.k8s.io/gateways",
        "gateway.networking.k8s.io/httproutes",
        "gateway.networking.k8s.io/grpcroutes",
        "gateway.networking.k8s.io/tlsroutes",
        "gateway.networking.k8s.io/tcproutes",
        "rbac.authorization.k8s.io/clusterrolebindings",
        "rbac.authorization.k8s.io/rolebindings",
    ):
        assert operator[f"ClusterRole {key}"] == "list", key
    assert operator["ClusterRole rbac.authorization.k8s.io/clusterroles"] == "get"
    assert operator["ClusterRole rbac.authorization.k8s.io/roles"] == "get"
    assert operator["ClusterRole authorization.k8s.io/subjectaccessreviews"] == "create"
    rbac = [verbs for key, verbs in operator.items() if "rbac.authorization.k8s.io/" in key]
    assert not any(v in verbs for verbs in rbac for v in ("create", "patch", "delete", "bind"))

"""The webhook configuration for workload CRDs and for the system namespaces, rendered by Helm.

The built-in CRD rules must name exactly the kinds :mod:`minerguard.workloads` can read (one
table, checked here), user kinds reach both the rules and the webhook's settings, and the
system namespaces' entry keeps its safety: ``failurePolicy: Ignore``, a short timeout, only
the excluded namespaces and never the release namespace.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from minerguard import workloads
from tests.integration.chart import chart
from webhook.settings import WebhookSettings

RAY = {
    "group": "ray.io",
    "kind": "RayCluster",
    "resource": "rayclusters",
    "paths": ["spec.headGroupSpec.template", "spec.workerGroupSpecs[*].template"],
}


def entries(rendered: chart.Render) -> dict[str, dict[str, Any]]:
    config = rendered.one("ValidatingWebhookConfiguration")
    return {w["name"]: w for w in config["webhooks"]}


def rule_resources(entry: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (group, r)
        for rule in entry["rules"]
        for group in rule["apiGroups"]
        for r in rule["resources"]
    }


def webhook_env(rendered: chart.Render) -> dict[str, str]:
    deployment = rendered.one("Deployment", "-webhook")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_the_crd_rules_name_exactly_the_kinds_minerguard_reads() -> None:
    crds = entries(chart.render())["crds.validate.minerguard.io"]
    assert rule_resources(crds) == {(k.group, k.resource) for k in workloads.CRD_KINDS}
    assert crds["failurePolicy"] == "Fail"
    assert crds["clientConfig"]["service"]["path"] == "/validate"
    assert {op for rule in crds["rules"] for op in rule["operations"]} == {"CREATE", "UPDATE"}
    # Cluster-scoped kinds (ClusterWorkflowTemplate, ClusterTask) are matched too.
    assert {rule["scope"] for rule in crds["rules"]} == {"*"}
    # Status rewrites by the controllers (Argo's Workflow has no status subresource) are skipped.
    assert [c["name"] for c in crds["matchConditions"]] == ["spec-changed"]


def test_workload_crds_can_be_switched_off() -> None:
    names = entries(chart.render({"webhook": {"rules": {"workloadCRDs": False}}}))
    assert "crds.validate.minerguard.io" not in names


def test_a_registered_kind_reaches_the_rules_and_the_webhook_reads_it() -> None:
    rendered = chart.render(
        {"webhook": {"rules": {"workloadCRDs": False}, "podTemplateKinds": [RAY]}}
    )
    crds = entries(rendered)["crds.validate.minerguard.io"]
    assert rule_resources(crds) == {("ray.io", "rayclusters")}
    assert crds["rules"][0]["apiVersions"] == ["*"]
    raw = webhook_env(rendered)["MINERGUARD_WEBHOOK_POD_TEMPLATE_KINDS"]
    settings = WebhookSettings.model_validate({"pod_template_kinds": json.loads(raw)})
    kind = settings.workload_kinds().lookup("RayCluster", "ray.io")
    assert kind is not None
    assert kind.resource == "rayclusters"
    # Without a registration the variable is not set at all.
    assert "MINERGUARD_WEBHOOK_POD_TEMPLATE_KINDS" not in webhook_env(chart.render())


@pytest.mark.parametrize(
    "bad",
    [
        {"group": "ray.io", "kind": "RayCluster"},  # no resource: no rule can be written
        {**RAY, "extra": 1},
        {**RAY, "kind": "raycluster"},
    ],
)
def test_the_values_schema_refuses_a_malformed_kind(bad: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="podTemplateKinds"):
        chart.render({"webhook": {"podTemplateKinds": [bad]}})


def test_the_system_entry_covers_the_excluded_namespaces_and_never_blocks_them() -> None:
    rendered = chart.render({"excludedNamespaces": ["kube-node-lease", "gatekeeper-system"]})
    found = entries(rendered)
    system = found["system.validate.minerguard.io"]
    assert system["failurePolicy"] == "Ignore"
    assert system["timeoutSeconds"] == 3
    assert system["clientConfig"]["service"]["path"] == "/validate/system"
    (selector,) = system["namespaceSelector"]["matchExpressions"]
    assert selector["operator"] == "In"
    assert selector["values"] == ["kube-system", "kube-node-lease", "gatekeeper-system"]
    assert chart.NAMESPACE not in selector["values"]  # minerguard can always restart itself
    # Everything the ordinary entries judge elsewhere is judged there too.
    ordinary = set().union(
        *(rule_resources(e) for n, e in found.items() if n != "system.validate.minerguard.io")
    )
    assert rule_resources(system) == ordinary
    assert {rule["scope"] for rule in system["rules"]} == {"Namespaced"}
    # And the ordinary entries still never see those namespaces.
    for name, entry in found.items():
        if name != "system.validate.minerguard.io":
            (excluded,) = entry["namespaceSelector"]["matchExpressions"]
            assert excluded["operator"] == "NotIn"
            assert set(selector["values"]) <= set(excluded["values"])


def test_the_system_entry_timeout_is_a_value_and_it_can_be_switched_off() -> None:
    rendered = chart.render({"webhook": {"systemNamespaces": {"timeoutSeconds": 1}}})
    assert entries(rendered)["system.validate.minerguard.io"]["timeoutSeconds"] == 1
    # The webhook cuts its reviews there to the same budget (registry look-ups included).
    raw = webhook_env(rendered)["MINERGUARD_WEBHOOK_SYSTEM_TIMEOUT_SECONDS"]
    settings = WebhookSettings.model_validate({"system_timeout_seconds": raw})
    assert settings.for_system_entry().deadline < 1 < settings.deadline
    off = entries(chart.render({"webhook": {"systemNamespaces": {"enabled": False}}}))
    assert "system.validate.minerguard.io" not in off


def test_installed_into_kube_system_the_system_entry_is_not_rendered() -> None:
    # Its only namespace would be minerguard's own, which must never depend on minerguard.
    found = entries(chart.render(namespace="kube-system"))
    assert "system.validate.minerguard.io" not in found


STAMP = {"stampCreator": {"enabled": True}}


def entries_of(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in config["webhooks"]}


def stamp_entry(rendered: chart.Render) -> dict[str, Any]:
    config = rendered.one("MutatingWebhookConfiguration")
    found: dict[str, Any] = entries_of(config)["stamp.minerguard.io"]
    return found


def guard_resources(rendered: chart.Render) -> set[tuple[str, str]]:
    policy = rendered.one("ValidatingAdmissionPolicy", "-created-by")
    return {
        (group, r)
        for rule in policy["spec"]["matchConstraints"]["resourceRules"]
        for group in rule["apiGroups"]
        for r in rule["resources"]
    }


def test_the_creator_stamp_and_its_guard_cover_exactly_the_crds_the_webhook_judges() -> None:
    # The person who created a Workflow or TaskRun is what a responder needs (its pods carry the
    # controller's identity): the stamp entry and the guard derive from the same table as the
    # validating rules, so they cannot drift apart.
    rendered = chart.render({"webhook": STAMP})
    crds = rule_resources(entries(rendered)["crds.validate.minerguard.io"])
    assert crds == {(k.group, k.resource) for k in workloads.CRD_KINDS}
    assert crds <= rule_resources(stamp_entry(rendered))
    guarded = guard_resources(rendered)
    assert crds <= guarded
    assert {(g, f"{r}/status") for g, r in crds} <= guarded  # a status write carries metadata
    # Cluster-scoped kinds (ClusterWorkflowTemplate, ClusterTask) are stamped and guarded too.
    assert "*" in {rule["scope"] for rule in stamp_entry(rendered)["rules"]}


def test_a_registered_kind_is_stamped_and_guarded_and_switched_off_crds_are_not() -> None:
    values = {"webhook": {**STAMP, "rules": {"workloadCRDs": False}, "podTemplateKinds": [RAY]}}
    rendered = chart.render(values)
    assert ("ray.io", "rayclusters") in rule_resources(stamp_entry(rendered))
    assert {("ray.io", "rayclusters"), ("ray.io", "rayclusters/status")} <= guard_resources(
        rendered
    )
    stamped = rule_resources(stamp_entry(rendered))
    assert not {g for g, _ in stamped} & {"argoproj.io", "tekton.dev", "kubeflow.org"}

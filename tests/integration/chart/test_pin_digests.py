"""``webhook.pinDigests``: the opt-in MutatingWebhookConfiguration that pins images to digests."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client

from tests.integration.chart import chart

ON = {"webhook": {"pinDigests": {"enabled": True}}}


def _pinning(rendered: chart.Render) -> Any:
    mwc = rendered.one("MutatingWebhookConfiguration")
    try:
        kubernetes_validate.validate(mwc, chart.KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"MutatingWebhookConfiguration: {err}")
    typed = chart.typed(client.V1MutatingWebhookConfiguration, mwc)
    (webhook,) = typed.webhooks
    return webhook


def test_pinning_is_off_by_default() -> None:
    assert chart.render().of_kind("MutatingWebhookConfiguration") == []


def test_pinning_calls_mutate_for_pods_being_created_updated_and_debugged() -> None:
    webhook = _pinning(chart.render(ON))
    assert webhook.client_config.service.path == "/mutate"
    assert webhook.side_effects == "None"
    assert webhook.reinvocation_policy == "IfNeeded"
    (rule,) = webhook.rules
    assert rule.operations == ["CREATE", "UPDATE"]
    assert rule.resources == ["pods", "pods/ephemeralcontainers"]


def test_pinning_fails_open_by_default_and_takes_its_own_failure_policy() -> None:
    assert _pinning(chart.render(ON)).failure_policy == "Ignore"
    open_validating = {"webhook": {"failurePolicy": "Ignore", "pinDigests": {"enabled": True}}}
    assert _pinning(chart.render(open_validating)).failure_policy == "Ignore"
    closed = {"webhook": {"pinDigests": {"enabled": True, "failurePolicy": "Fail"}}}
    assert _pinning(chart.render(closed)).failure_policy == "Fail"
    validating = chart.render(closed).one("ValidatingWebhookConfiguration")["webhooks"]
    # Unchanged by pinning's; the system namespaces' entry always fails open.
    assert all(
        w["failurePolicy"] == ("Ignore" if w["name"] == "system.validate.minerguard.io" else "Fail")
        for w in validating
    )


@pytest.mark.parametrize("profile", ["default", "custom-namespace", "cert-manager"])
def test_pinning_reaches_the_same_service_and_skips_the_same_namespaces(profile: str) -> None:
    values = chart.profile_values(profile)
    values["webhook"] = {**values.get("webhook", {}), "pinDigests": {"enabled": True}}
    namespace = "security" if profile == "custom-namespace" else chart.NAMESPACE
    rendered = chart.render(values, namespace=namespace)
    pin = rendered.one("MutatingWebhookConfiguration")
    _pinning(rendered)
    (mutating,) = pin["webhooks"]
    validating = rendered.one("ValidatingWebhookConfiguration")["webhooks"][0]
    for key in ("namespaceSelector", "objectSelector", "timeoutSeconds"):
        assert mutating[key] == validating[key], key
    service = validating["clientConfig"]["service"]
    assert mutating["clientConfig"]["service"] == {**service, "path": "/mutate"}
    assert mutating["clientConfig"].get("caBundle") == validating["clientConfig"].get("caBundle")
    validating_annotations = rendered.one("ValidatingWebhookConfiguration")["metadata"].get(
        "annotations"
    )
    assert pin["metadata"].get("annotations") == validating_annotations  # cert-manager CA inject
    assert service["path"] == "/validate"


def test_the_values_schema_refuses_an_unknown_failure_policy() -> None:
    with pytest.raises(Exception, match="failurePolicy"):
        chart.render({"webhook": {"pinDigests": {"enabled": True, "failurePolicy": "Retry"}}})


def test_the_uninstall_hook_removes_the_pinning_configuration_and_only_it() -> None:
    rendered = chart.render(ON)
    name = rendered.one("MutatingWebhookConfiguration")["metadata"]["name"]
    job = next(m.obj for m in rendered.hooks("pre-delete") if m.kind == "Job")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MUTATING_WEBHOOK_CONFIGURATION"] == name
    role = next(m.obj for m in rendered.hooks("pre-delete") if m.kind == "ClusterRole")
    pinning = [r for r in role["rules"] if "mutatingwebhookconfigurations" in r["resources"]]
    assert pinning == [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations"],
            "resourceNames": [name],
            "verbs": ["get", "delete"],
        }
    ]
    off = chart.render()
    job = next(m.obj for m in off.hooks("pre-delete") if m.kind == "Job")
    assert "MUTATING_WEBHOOK_CONFIGURATION" not in str(job)

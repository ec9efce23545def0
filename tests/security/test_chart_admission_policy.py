"""Who may write which MinerDetection: the chart's ValidatingAdmissionPolicy, evaluated for real.

The operator deletes pods and stops workloads on what a MinerDetection says, so writing one is a
privilege. RBAC can only say "may create MinerDetections"; the chart's ValidatingAdmissionPolicy
narrows each writer to its own records, and the API server enforces it. These tests render the
chart with Helm's engine and evaluate the policy's CEL (variables, validations, messages) with
cel-python, a real CEL implementation, against the `request` and `object` the API server would
pass: a forged record is refused, the genuine ones pass.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from minerguard.api.detection import Layer, MinerDetection, MinerDetectionSpec
from tests.integration.chart import chart
from tests.integration.chart.admission_policy import AdmissionPolicy, Verdict

AGENT = "system:serviceaccount:minerguard:mg-minerguard-agent"
WEBHOOK = "system:serviceaccount:minerguard:mg-minerguard-webhook"
OPERATOR = "system:serviceaccount:minerguard:mg-minerguard-operator"
TENANT = "system:serviceaccount:payments:default"
RUNTIME_LAYERS = (Layer.EXEC, Layer.BEHAVIOUR, Layer.NETWORK)
POLICY = "-detection-writers"


def _policy(values: dict[str, Any] | None = None) -> AdmissionPolicy:
    return AdmissionPolicy(chart.render(values).one("ValidatingAdmissionPolicy", POLICY))


def _detection(layer: Layer, node: str | None = "node-a") -> dict[str, Any]:
    spec = MinerDetectionSpec(layer=layer, score=9.0, node=node, pod_name="web-1", container="c")
    body = MinerDetection(spec=spec).to_k8s()
    body["metadata"] = {"name": "web-1-x", "namespace": "payments"}
    return body


@pytest.mark.parametrize("layer", RUNTIME_LAYERS)
def test_a_pod_cannot_forge_a_runtime_detection(layer: Layer) -> None:
    verdict = _policy().evaluate(operation="CREATE", username=TENANT, obj=_detection(layer))
    assert not verdict.allowed
    assert f"{TENANT} may not create MinerDetections of layer {layer}" in verdict.messages[0]


@pytest.mark.parametrize("layer", RUNTIME_LAYERS)
def test_the_webhook_cannot_write_a_runtime_detection(layer: Layer) -> None:
    policy = _policy()
    assert not policy.evaluate(operation="CREATE", username=WEBHOOK, obj=_detection(layer)).allowed


def test_a_pod_or_the_agent_cannot_forge_an_admission_detection() -> None:
    policy = _policy()
    for who in (TENANT, AGENT):
        verdict = policy.evaluate(operation="CREATE", username=who, obj=_detection(Layer.ADMISSION))
        assert not verdict.allowed, who


def test_an_agent_cannot_report_a_detection_on_another_node() -> None:
    policy = _policy()
    elsewhere = policy.evaluate(
        operation="CREATE", username=AGENT, node="node-b", obj=_detection(Layer.EXEC, "node-a")
    )
    assert not elsewhere.allowed
    assert elsewhere.messages == (
        "minerguard: the agent on node node-b may only report detections on its own node",
    )
    nowhere = policy.evaluate(
        operation="CREATE", username=AGENT, node="node-b", obj=_detection(Layer.EXEC, None)
    )
    assert not nowhere.allowed


def test_genuine_detections_are_admitted() -> None:
    policy = _policy()
    for layer in RUNTIME_LAYERS:
        own_node = policy.evaluate(
            operation="CREATE", username=AGENT, node="node-a", obj=_detection(layer, "node-a")
        )
        assert own_node == Verdict(True, ()), layer
        # A token without a node binding (before 1.30's projected tokens): layer checks only.
        unbound = policy.evaluate(operation="CREATE", username=AGENT, obj=_detection(layer))
        assert unbound.allowed, layer
    for who in (WEBHOOK, OPERATOR):  # the webhook's audit trail, the operator's background scan
        admission = policy.evaluate(
            operation="CREATE", username=who, obj=_detection(Layer.ADMISSION, None)
        )
        assert admission.allowed, who


@pytest.mark.parametrize("who", [AGENT, WEBHOOK, TENANT])
def test_only_the_operator_writes_a_detections_status(who: str) -> None:
    policy = _policy()
    detection = _detection(Layer.EXEC)
    acted = {**detection, "status": {"phase": "Acted", "actionsTaken": ["DeletePod"]}}
    for sub in ("status", ""):
        forged = policy.evaluate(
            operation="UPDATE", username=who, obj=acted, old=detection, sub_resource=sub
        )
        assert not forged.allowed, (who, sub)
        assert "only the operator may" in forged.messages[0]
        genuine = policy.evaluate(
            operation="UPDATE", username=OPERATOR, obj=acted, old=detection, sub_resource=sub
        )
        assert genuine.allowed, sub


def test_cluster_admins_and_configured_users_may_write_any_detection() -> None:
    policy = _policy()
    admin = policy.evaluate(
        operation="CREATE",
        username="kubernetes-admin",
        groups=("system:masters", "system:authenticated"),
        obj=_detection(Layer.EXEC),
    )
    assert admin.allowed
    trusted = _policy({"admissionPolicy": {"trustedUsers": ["alice@corp.example"]}})
    for operation in ("CREATE", "UPDATE"):
        verdict = trusted.evaluate(
            operation=operation,
            username="alice@corp.example",
            groups=("oidc:sre",),
            obj=_detection(Layer.BEHAVIOUR),
            old=_detection(Layer.BEHAVIOUR),
        )
        assert verdict.allowed, operation
    nobody = _policy({"admissionPolicy": {"trustedGroups": []}})
    refused = nobody.evaluate(
        operation="CREATE",
        username="kubernetes-admin",
        groups=("system:masters",),
        obj=_detection(Layer.EXEC),
    )
    assert not refused.allowed


def test_the_service_accounts_follow_the_release_names_and_namespace() -> None:
    rendered = chart.render_profile("custom-namespace")
    policy = AdmissionPolicy(rendered.one("ValidatingAdmissionPolicy", POLICY))
    agent = "system:serviceaccount:security-tools:guard-agent"
    for account in chart.render_profile("custom-namespace").of_kind("ServiceAccount"):
        assert account.obj["metadata"]["namespace"] == "security-tools"
    assert policy.evaluate(operation="CREATE", username=agent, obj=_detection(Layer.EXEC)).allowed
    assert not policy.evaluate(
        operation="CREATE", username=AGENT, obj=_detection(Layer.EXEC)
    ).allowed


@pytest.mark.parametrize("profile", chart.PROFILES)
def test_the_policy_is_bound_to_deny_and_passes_the_kubernetes_schema(profile: str) -> None:
    rendered = chart.render_profile(profile)
    policy = rendered.one("ValidatingAdmissionPolicy", POLICY)
    binding = rendered.one("ValidatingAdmissionPolicyBinding", POLICY)
    for obj in (policy, binding):
        kubernetes_validate.validate(obj, chart.KUBE_VERSION, strict=True)
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "paramKind" not in policy["spec"]
    assert "matchResources" not in binding["spec"]  # every namespace


def test_the_policy_can_report_only_or_be_left_out() -> None:
    warn = chart.render({"admissionPolicy": {"validationActions": ["Warn", "Audit"]}})
    binding = warn.one("ValidatingAdmissionPolicyBinding", POLICY)
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    off = chart.render({"admissionPolicy": {"enabled": False}})
    assert not off.of_kind("ValidatingAdmissionPolicy")
    assert not off.of_kind("ValidatingAdmissionPolicyBinding")

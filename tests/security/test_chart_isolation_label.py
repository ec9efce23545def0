"""Only the operator may set, change or remove a pod's ``minerguard.io/isolated`` label.

``Isolate`` denies a pod's egress with a policy (an AdminNetworkPolicy, or a NetworkPolicy) that
selects the pod by the label ``minerguard.io/isolated=<pod uid>``. Whoever may patch the pod (its
namespace's developers, its controllers) could remove that label and walk out of the isolation,
so the chart ships a ValidatingAdmissionPolicy that lets only the operator's service account (and
the trusted users and groups of the detections policy) write it, and tells the operator so
(``MINERGUARD_OPERATOR_ISOLATION_LABEL_GUARDED``): without the guard the operator reports the
isolation as not guaranteed. The policy's CEL is evaluated with cel-python against the requests
the API server would send (see ``tests/integration/chart/admission_policy.py``).
"""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from minerguard_operator.decide import marks
from tests.integration.chart import chart
from tests.integration.chart.admission_policy import AdmissionPolicy, Verdict

LABEL = marks.ISOLATED  # the chart spells it out; a rename in the operator must reach it
POLICY = "-isolation-label"
POD = ("", "v1", "pods")
UID = "0b6c7a3e-2f55-4d3a-9a6e-3c1f0e6d2a11"
OPERATOR = "system:serviceaccount:minerguard:mg-minerguard-operator"
TENANT = "system:serviceaccount:payments:deployer"
DEVELOPER = "dev@payments.example"
NODE = "system:node:node-a"
RS_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"
GUARDED = "MINERGUARD_OPERATOR_ISOLATION_LABEL_GUARDED"


def _policy(values: dict[str, Any] | None = None) -> AdmissionPolicy:
    return AdmissionPolicy(chart.render(values).one("ValidatingAdmissionPolicy", POLICY))


def _pod(labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web-1", "namespace": "payments", "uid": UID}
    if labels is not None:
        metadata["labels"] = labels
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
        "status": {"phase": "Running"},
    }


ISOLATED = _pod({"app": "web", LABEL: UID})
PLAIN = _pod({"app": "web"})


def _update(
    who: str, old: dict[str, Any], new: dict[str, Any], sub: str = "", **kw: Any
) -> Verdict:
    return _policy().evaluate(
        operation="UPDATE", username=who, obj=new, old=old, sub_resource=sub, resource=POD, **kw
    )


def _create(who: str, pod: dict[str, Any], **kw: Any) -> Verdict:
    return _policy().evaluate(operation="CREATE", username=who, obj=pod, resource=POD, **kw)


def _relabelled(pod: dict[str, Any], **labels: str | None) -> dict[str, Any]:
    out = copy.deepcopy(pod)
    current = out["metadata"].setdefault("labels", {})
    for name, value in labels.items():
        key = LABEL if name == "isolated" else name
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    return out


@pytest.mark.parametrize("who", [TENANT, DEVELOPER, RS_CONTROLLER])
def test_a_tenant_cannot_remove_the_isolation_label_from_its_pod(who: str) -> None:
    verdict = _update(who, ISOLATED, _relabelled(ISOLATED, isolated=None))
    assert not verdict.allowed
    assert verdict.messages == (
        f"minerguard: {who} may not remove the {LABEL} label of pod payments/web-1: only the "
        "operator may (it selects the pod for the policy that denies its egress)",
    )
    # Dropping every label at once (an `apply` of a manifest without labels) is the same thing.
    bare = copy.deepcopy(ISOLATED)
    del bare["metadata"]["labels"]
    assert not _update(who, ISOLATED, bare).allowed


def test_a_tenant_cannot_point_the_isolation_label_at_another_uid() -> None:
    verdict = _update(TENANT, ISOLATED, _relabelled(ISOLATED, isolated="not-my-uid"))
    assert not verdict.allowed
    assert f"may not change the {LABEL} label" in verdict.messages[0]
    assert not _update(TENANT, ISOLATED, _relabelled(ISOLATED, isolated="")).allowed


def test_a_tenant_cannot_add_or_preset_the_isolation_label() -> None:
    # A preset label would be harmless for isolation (the operator overwrites it with the pod's
    # uid, and another pod's uid only isolates the tenant's own pod), but refusing it keeps the
    # invariant simple: a pod carrying the label was isolated by the operator.
    added = _update(TENANT, PLAIN, _relabelled(PLAIN, isolated=UID))
    assert not added.allowed
    assert f"may not add the {LABEL} label" in added.messages[0]
    for who in (TENANT, RS_CONTROLLER):
        preset = _create(who, _relabelled(PLAIN, isolated="anything"))
        assert not preset.allowed, who
        assert f"may not add the {LABEL} label" in preset.messages[0]


def test_the_status_subresource_cannot_carry_a_label_change() -> None:
    # pods/status keeps the labels it is sent (NodeRestriction refuses that for kubelets only),
    # so whoever may update a pod's status could otherwise remove the label through it.
    verdict = _update(TENANT, ISOLATED, _relabelled(ISOLATED, isolated=None), sub="status")
    assert not verdict.allowed
    running = copy.deepcopy(ISOLATED)
    running["status"] = {"phase": "Running", "podIP": "10.0.0.9"}
    assert _update(NODE, ISOLATED, running, sub="status") == Verdict(True, ())


def test_the_operator_may_isolate_and_release_a_pod() -> None:
    isolated = _relabelled(PLAIN, isolated=UID, app=None)  # released from its owner's selector
    isolated["metadata"]["annotations"] = {"minerguard.io/isolated-by": "web-1-x"}
    assert _update(OPERATOR, PLAIN, isolated) == Verdict(True, ())
    assert _update(OPERATOR, ISOLATED, _relabelled(ISOLATED, isolated=None)).allowed


def test_ordinary_pod_writes_are_not_refused() -> None:
    assert _create(RS_CONTROLLER, PLAIN) == Verdict(True, ())
    assert _create(TENANT, _pod()) == Verdict(True, ())  # no labels at all
    assert _update(TENANT, _pod(), _pod()).allowed
    # Other labels and annotations of an isolated pod stay the tenant's.
    relabelled = _relabelled(ISOLATED, app="web-v2", tier="frontend")
    relabelled["metadata"]["annotations"] = {"note": "under investigation"}
    assert _update(TENANT, ISOLATED, relabelled) == Verdict(True, ())
    assert _update(TENANT, PLAIN, _relabelled(PLAIN, app=None)).allowed


def test_cluster_admins_and_configured_users_may_change_the_label() -> None:
    removed = _relabelled(ISOLATED, isolated=None)
    admin = _update("kubernetes-admin", ISOLATED, removed, groups=("system:masters",))
    assert admin.allowed
    trusted = _policy({"admissionPolicy": {"trustedUsers": ["alice@corp.example"]}})
    verdict = trusted.evaluate(
        operation="UPDATE",
        username="alice@corp.example",
        groups=("oidc:sre",),
        obj=removed,
        old=ISOLATED,
        resource=POD,
    )
    assert verdict.allowed


@pytest.mark.parametrize(
    "group", ["system:authenticated", "system:unauthenticated", "system:serviceaccounts"]
)
def test_a_group_every_pod_is_in_cannot_be_trusted(group: str) -> None:
    # It would let every pod's service account change the label (and write any detection).
    with pytest.raises(helm.HelmValuesError, match="trustedGroups"):
        chart.render({"admissionPolicy": {"trustedGroups": ["system:masters", group]}})


def test_the_policy_matches_pod_writes_only_and_refuses_on_failure() -> None:
    policy = _policy()
    assert policy.spec["failurePolicy"] == "Fail"
    for operation in ("CREATE", "UPDATE"):
        assert policy.matches(operation, "", "pods")
    assert policy.matches("UPDATE", "", "pods/status")
    assert not policy.matches("DELETE", "", "pods")
    # These subresources keep the stored labels whatever they are sent.
    for sub in ("pods/ephemeralcontainers", "pods/resize", "pods/binding", "pods/eviction"):
        assert not policy.matches("UPDATE", "", sub)
        assert not policy.matches("CREATE", "", sub)


@pytest.mark.parametrize("profile", chart.PROFILES)
def test_the_policy_is_bound_and_passes_the_kubernetes_schema(profile: str) -> None:
    rendered = chart.render_profile(profile)
    if not rendered.values["operator"]["enabled"]:  # nothing isolates: no label to guard
        assert not [m for m in rendered.manifests if m.name.endswith(POLICY)]
        return
    policy = rendered.one("ValidatingAdmissionPolicy", POLICY)
    binding = rendered.one("ValidatingAdmissionPolicyBinding", POLICY)
    for obj in (policy, binding):
        kubernetes_validate.validate(obj, chart.KUBE_VERSION, strict=True)
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert "matchResources" not in binding["spec"]  # every namespace


def _operator_env(values: dict[str, Any] | None = None) -> dict[str, str]:
    deployment = chart.render(values).one("Deployment", "-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize(
    "values",
    [
        {"admissionPolicy": {"enabled": False}},
        {"admissionPolicy": {"guardIsolationLabel": False}},
        {"admissionPolicy": {"validationActions": ["Warn", "Audit"]}},
    ],
    ids=["policies-off", "guard-off", "report-only"],
)
def test_the_operator_is_told_the_label_is_guarded_only_when_it_is(values: dict[str, Any]) -> None:
    assert _operator_env()[GUARDED] == "true"
    assert chart.render().one("ValidatingAdmissionPolicyBinding", POLICY)["spec"][
        "validationActions"
    ] == ["Deny"]
    assert _operator_env(values)[GUARDED] == "false"
    if values["admissionPolicy"].get("validationActions") is None:
        assert not [m for m in chart.render(values).manifests if m.name.endswith(POLICY)]

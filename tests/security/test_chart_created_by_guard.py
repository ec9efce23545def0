"""Nobody but the webhook changes or removes the ``minerguard.io/created-by`` stamp.

The stamp names the person who created a workload; an investigation reports it as who applied
the workload that ran a miner. Whoever may update the workload (its namespace's developers, a
compromised CI account) could otherwise rewrite it to blame someone else, or remove it. Two
layers keep it: ``/mutate`` puts the stored value back on every UPDATE that would change it
(tested in tests/unit/webhook/test_stamping.py), and the chart's ValidatingAdmissionPolicy,
evaluated here with cel-python as the API server would, refuses any change that still arrives:
during a webhook outage with ``failurePolicy: Ignore``, through a status subresource, from a
later mutating webhook. The mutating entry's matchConditions are evaluated the same way: the
webhook must be called for every CREATE and every UPDATE touching the stamp, and no other.
"""

from __future__ import annotations

import copy
from typing import Any

import celpy
import kubernetes_validate
import pytest
from celpy import adapter

from minerguard.api.investigation import CREATED_BY_ANNOTATION, Actor
from tests.integration.chart import chart
from tests.integration.chart.admission_policy import AdmissionPolicy, Verdict

ON: dict[str, Any] = {"webhook": {"stampCreator": {"enabled": True}}}
POLICY = "-created-by"
DEPLOYMENTS = ("apps", "v1", "deployments")
PODS = ("", "v1", "pods")
WEBHOOK = "system:serviceaccount:minerguard:mg-minerguard-webhook"
DEVELOPER = "dev@payments.example"
DEPLOYER = "system:serviceaccount:payments:deployer"
GENUINE = Actor(username="alice@example.com", operation="CREATE", time="2026-12-01T10:00:00Z")
FORGED = Actor(username="bob@example.com", operation="CREATE", time="2026-12-01T10:00:00Z")


def _policy(values: dict[str, Any] | None = None) -> AdmissionPolicy:
    merged = copy.deepcopy(ON)
    for key, value in (values or {}).items():
        merged.setdefault(key, {}).update(value)
    return AdmissionPolicy(chart.render(merged).one("ValidatingAdmissionPolicy", POLICY))


def _object(kind: str = "Deployment", stamp: str | None = GENUINE.stamp()) -> dict[str, Any]:
    annotations = {"team": "payments"}
    if stamp is not None:
        annotations[CREATED_BY_ANNOTATION] = stamp
    return {
        "apiVersion": "apps/v1" if kind != "Pod" else "v1",
        "kind": kind,
        "metadata": {"name": "web", "namespace": "payments", "annotations": annotations},
        "spec": {},
    }


def _update(
    who: str,
    old: dict[str, Any],
    new: dict[str, Any],
    resource: tuple[str, str, str] = DEPLOYMENTS,
    **kw: Any,
) -> Verdict:
    return _policy().evaluate(
        operation="UPDATE", username=who, obj=new, old=old, resource=resource, **kw
    )


@pytest.mark.parametrize("who", [DEVELOPER, DEPLOYER])
def test_a_user_cannot_rewrite_the_stamp_to_blame_someone_else(who: str) -> None:
    verdict = _update(who, _object(), _object(stamp=FORGED.stamp()))
    assert not verdict.allowed
    assert verdict.messages == (
        f"minerguard: {who} may not change the {CREATED_BY_ANNOTATION} annotation of deployments "
        "payments/web: it records who created the object (keep the stored value in the "
        "manifest, or leave it out)",
    )


def test_a_user_cannot_remove_the_stamp_or_add_one_later() -> None:
    removed = _update(DEVELOPER, _object(), _object(stamp=None))
    assert not removed.allowed
    assert "may not remove" in removed.messages[0]
    bare = _object()
    del bare["metadata"]["annotations"]
    assert not _update(DEVELOPER, _object(), bare).allowed
    assert not _update(DEVELOPER, _object(), _object(stamp="")).allowed  # empty is a change
    added = _update(DEVELOPER, _object(stamp=None), _object(stamp=FORGED.stamp()))
    assert not added.allowed
    assert "may not add" in added.messages[0]


def test_the_status_subresource_cannot_carry_a_change() -> None:
    pod = _object("Pod")
    verdict = _update(DEPLOYER, pod, _object("Pod", stamp=None), PODS, sub_resource="status")
    assert not verdict.allowed
    rs = ("apps", "v1", "replicasets")
    assert not _update(DEPLOYER, _object(), _object(stamp=None), rs, sub_resource="status").allowed


def test_ordinary_updates_and_the_webhook_and_admins_are_not_refused() -> None:
    relabelled = _object()
    relabelled["metadata"]["annotations"]["team"] = "platform"
    relabelled["spec"] = {"replicas": 3}
    assert _update(DEVELOPER, _object(), relabelled) == Verdict(True, ())
    assert _update(DEVELOPER, _object(stamp=None), _object(stamp=None)).allowed
    assert _update(WEBHOOK, _object(), _object(stamp=FORGED.stamp())).allowed
    admin = _update("kubernetes-admin", _object(), _object(stamp=None), groups=("system:masters",))
    assert admin.allowed
    create = _policy().evaluate(
        operation="CREATE", username=DEVELOPER, obj=_object(), resource=DEPLOYMENTS
    )
    assert create.allowed  # CREATE is the mutating webhook's: it replaces any value sent


def test_the_guard_covers_every_stamped_kind_and_its_status_and_fails_closed() -> None:
    policy = _policy()
    assert policy.spec["failurePolicy"] == "Fail"
    stamped = {
        "": ("pods", "replicationcontrollers"),
        "apps": ("deployments", "statefulsets", "daemonsets", "replicasets"),
        "batch": ("jobs", "cronjobs"),
    }
    for group, plurals in stamped.items():
        for plural in plurals:
            assert policy.matches("UPDATE", group, plural), plural
            assert policy.matches("UPDATE", group, f"{plural}/status"), plural
    assert not policy.matches("DELETE", "apps", "deployments")


def test_the_guard_is_rendered_only_with_the_stamp_and_admission_policies() -> None:
    assert not [m for m in chart.render().manifests if m.name.endswith(POLICY)]
    off = copy.deepcopy(ON)
    off["admissionPolicy"] = {"enabled": False}
    assert not [m for m in chart.render(off).manifests if m.name.endswith(POLICY)]
    rendered = chart.render(ON)
    policy = rendered.one("ValidatingAdmissionPolicy", POLICY)
    binding = rendered.one("ValidatingAdmissionPolicyBinding", POLICY)
    for obj in (policy, binding):
        kubernetes_validate.validate(obj, chart.KUBE_VERSION, strict=True)
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # every namespace


def _calls(condition: str, operation: str, old: Any, new: Any) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(condition))
    activation = {
        "request": adapter.json_to_cel({"operation": operation}),
        "object": adapter.json_to_cel(new),
        "oldObject": adapter.json_to_cel(old),
    }
    return bool(program.evaluate(activation))


def test_the_mutating_entry_is_called_for_creates_and_for_updates_touching_the_stamp_only() -> None:
    mwc = chart.render(ON).one("MutatingWebhookConfiguration")
    (entry,) = mwc["webhooks"]
    (condition,) = entry["matchConditions"]
    expression = condition["expression"]
    assert _calls(expression, "CREATE", None, _object())
    assert _calls(expression, "CREATE", None, _object(stamp=None))
    assert _calls(expression, "UPDATE", _object(), _object(stamp=FORGED.stamp()))
    assert _calls(expression, "UPDATE", _object(), _object(stamp=None))
    assert _calls(expression, "UPDATE", _object(stamp=None), _object(stamp=FORGED.stamp()))
    bare = _object()
    del bare["metadata"]["annotations"]
    assert _calls(expression, "UPDATE", _object(), bare)
    scaled = _object()
    scaled["spec"] = {"replicas": 5}
    assert not _calls(expression, "UPDATE", _object(), scaled)
    assert not _calls(expression, "UPDATE", _object(stamp=None), bare)


WORKFLOWS = ("argoproj.io", "v1alpha1", "workflows")
TASKRUNS = ("tekton.dev", "v1", "taskruns")


def _crd(kind: str, group: str, stamp: str | None = GENUINE.stamp()) -> dict[str, Any]:
    obj = _object(stamp=stamp)
    return {**obj, "apiVersion": f"{group}/v1", "kind": kind}


def test_nobody_can_rewrite_the_creator_of_a_workflow_or_a_taskrun() -> None:
    # Argo/Tekton pods are created by the controller: the Workflow's or TaskRun's stamp is the
    # only record of who started the run, so it is guarded like a Deployment's.
    for kind, resource in (("Workflow", WORKFLOWS), ("TaskRun", TASKRUNS)):
        group = resource[0]
        forged = _update(DEVELOPER, _crd(kind, group), _crd(kind, group, FORGED.stamp()), resource)
        assert not forged.allowed, kind
        removed = _update(DEPLOYER, _crd(kind, group), _crd(kind, group, None), resource)
        assert not removed.allowed, kind
        via_status = _update(
            DEPLOYER, _crd(kind, group), _crd(kind, group, None), resource, sub_resource="status"
        )
        assert not via_status.allowed, kind
        assert _update(WEBHOOK, _crd(kind, group), _crd(kind, group, None), resource).allowed

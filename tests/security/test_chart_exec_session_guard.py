"""Nobody but the webhook writes an exec-session Event.

The operator's investigation names the user whose ``kubectl exec`` started a miner from the
webhook's ExecSession Events. Whoever may create Events in a namespace could otherwise forge a
session (blame someone else for their own exec) or bury the real one under decoys. The chart's
ValidatingAdmissionPolicy, evaluated here with cel-python as the API server would, refuses such
Events from anyone but the webhook, through both Event APIs; every other Event passes.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from minerguard.api.investigation import EXEC_SESSION_ANNOTATION, EXEC_SESSION_REASON, ExecSession
from tests.integration.chart import chart
from tests.integration.chart.admission_policy import AdmissionPolicy, Verdict

POLICY = "-exec-sessions"
CORE = ("", "v1", "events")
NEW_API = ("events.k8s.io", "v1", "events")
WEBHOOK = "system:serviceaccount:minerguard:mg-minerguard-webhook"
DEVELOPER = "dev@payments.example"
CONTROLLER = "system:serviceaccount:kube-system:deployment-controller"
FORGED = ExecSession(username="alice@example.com", command=["sh"], container="app")


def _policy(values: dict[str, Any] | None = None) -> AdmissionPolicy:
    return AdmissionPolicy(chart.render(values or {}).one("ValidatingAdmissionPolicy", POLICY))


def _event(reason: str = EXEC_SESSION_REASON, annotated: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web.1", "namespace": "payments"}
    if annotated:
        metadata["annotations"] = {EXEC_SESSION_ANNOTATION: FORGED.model_dump_json()}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": metadata,
        "reason": reason,
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "payments"},
    }


def _write(who: str, event: dict[str, Any], resource: tuple[str, str, str] = CORE) -> Verdict:
    return _policy().evaluate(operation="CREATE", username=who, obj=event, resource=resource)


@pytest.mark.parametrize("resource", [CORE, NEW_API])
def test_a_user_cannot_forge_an_exec_session_event_to_blame_someone_else(
    resource: tuple[str, str, str],
) -> None:
    verdict = _write(DEVELOPER, _event(), resource)
    assert not verdict.allowed
    assert verdict.messages == (
        f"minerguard: only the minerguard webhook records exec sessions; {DEVELOPER} may not "
        f"write an Event with reason ExecSession or the {EXEC_SESSION_ANNOTATION} annotation",
    )
    assert ExecSession.parse_event(_event()) is not None  # what the operator would have read


def test_neither_the_reason_nor_the_annotation_alone_gets_through() -> None:
    assert not _write(DEVELOPER, _event(annotated=False)).allowed
    assert not _write(DEVELOPER, _event(reason="Started")).allowed
    updated = _policy().evaluate(
        operation="UPDATE", username=DEVELOPER, obj=_event(), old=_event(), resource=CORE
    )
    assert not updated.allowed


def test_ordinary_events_and_the_webhook_and_admins_are_not_refused() -> None:
    assert _write(CONTROLLER, _event(reason="ScalingReplicaSet", annotated=False)).allowed
    assert _write(DEVELOPER, _event(reason="Pulled", annotated=False)).allowed
    assert _write(WEBHOOK, _event()).allowed
    admin = _policy().evaluate(
        operation="CREATE",
        username="kubernetes-admin",
        obj=_event(),
        resource=CORE,
        groups=("system:masters",),
    )
    assert admin.allowed


def test_the_guard_is_rendered_with_exec_sessions_and_admission_policies_only() -> None:
    rendered = chart.render()
    policy = rendered.one("ValidatingAdmissionPolicy", POLICY)
    binding = rendered.one("ValidatingAdmissionPolicyBinding", POLICY)
    for obj in (policy, binding):
        kubernetes_validate.validate(obj, chart.KUBE_VERSION, strict=True)
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    for values in (
        {"webhook": {"execSessions": {"enabled": False}}},
        {"admissionPolicy": {"enabled": False}},
    ):
        assert not [
            m for m in chart.render(copy.deepcopy(values)).manifests if m.name.endswith(POLICY)
        ]

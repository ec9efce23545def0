"""``webhook.stampCreator`` and ``webhook.execSessions``: entries, settings and cleanup rendered.

The creator stamp shares ``/mutate`` (and the MutatingWebhookConfiguration) with digest pinning:
each request must reach ``/mutate`` through exactly one entry, the process must be told which
parts are on, and an uninstall must remove the configuration whichever part rendered it.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from minerguard import workloads
from tests.integration.chart import chart

STAMP = {"webhook": {"stampCreator": {"enabled": True}}}
BOTH = {"webhook": {"stampCreator": {"enabled": True}, "pinDigests": {"enabled": True}}}


def _entries(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    mwc = chart.render(values).one("MutatingWebhookConfiguration")
    kubernetes_validate.validate(mwc, chart.KUBE_VERSION, strict=True)
    return {entry["name"]: entry for entry in mwc["webhooks"]}


def _resources(entry: dict[str, Any]) -> set[tuple[str, str]]:
    return {(g, r) for rule in entry["rules"] for g in rule["apiGroups"] for r in rule["resources"]}


def _env(values: dict[str, Any] | None = None) -> dict[str, str]:
    deployment = chart.render(values).one("Deployment", "-webhook")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


WORKLOADS = {
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("", "replicationcontrollers"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    # Workload CRDs: their pods carry the engine controller's identity, so the run's creator
    # is only recorded on the Workflow/TaskRun/... itself (the same table as the validating rules).
    *((k.group, k.resource) for k in workloads.CRD_KINDS),
}


def test_the_stamp_is_off_by_default_and_pinning_alone_is_unchanged() -> None:
    assert chart.render().of_kind("MutatingWebhookConfiguration") == []
    env = _env()
    assert env["MINERGUARD_WEBHOOK_STAMP_CREATOR"] == "false"
    assert env["MINERGUARD_WEBHOOK_PIN_DIGESTS"] == "false"
    (pin,) = _entries({"webhook": {"pinDigests": {"enabled": True}}}).values()
    assert pin["name"] == "pods.pin.minerguard.io"
    assert "matchConditions" not in pin


def test_stamping_alone_calls_mutate_for_pods_and_workloads_through_one_entry() -> None:
    entries = _entries(STAMP)
    assert set(entries) == {"stamp.minerguard.io"}
    stamp = entries["stamp.minerguard.io"]
    assert _resources(stamp) == {("", "pods"), *WORKLOADS}
    assert {op for rule in stamp["rules"] for op in rule["operations"]} == {"CREATE", "UPDATE"}
    assert stamp["clientConfig"]["service"]["path"] == "/mutate"
    assert stamp["failurePolicy"] == "Fail"
    assert stamp["sideEffects"] == "None"
    assert stamp["reinvocationPolicy"] == "IfNeeded"  # a later webhook's rewrite is undone
    assert [c["name"] for c in stamp["matchConditions"]] == ["stamp-created-or-changed"]
    env = _env(STAMP)
    assert env["MINERGUARD_WEBHOOK_STAMP_CREATOR"] == "true"
    assert env["MINERGUARD_WEBHOOK_PIN_DIGESTS"] == "false"  # /mutate must not pin then


def test_with_pinning_pods_reach_mutate_once_and_fail_closed_when_the_stamp_says_so() -> None:
    entries = _entries(BOTH)
    assert set(entries) == {"pods.pin.minerguard.io", "stamp.minerguard.io"}
    assert ("", "pods") not in _resources(entries["stamp.minerguard.io"])
    assert _resources(entries["stamp.minerguard.io"]) == WORKLOADS
    assert entries["pods.pin.minerguard.io"]["failurePolicy"] == "Fail"
    lenient = {
        "webhook": {
            "stampCreator": {"enabled": True, "failurePolicy": "Ignore"},
            "pinDigests": {"enabled": True},
        }
    }
    assert {e["failurePolicy"] for e in _entries(lenient).values()} == {"Ignore"}
    env = _env(BOTH)
    assert env["MINERGUARD_WEBHOOK_STAMP_CREATOR"] == "true"
    assert env["MINERGUARD_WEBHOOK_PIN_DIGESTS"] == "true"


def test_the_uninstall_hook_removes_the_mutating_configuration_of_the_stamp_too() -> None:
    rendered = chart.render(STAMP)
    name = rendered.one("MutatingWebhookConfiguration")["metadata"]["name"]
    job = next(m.obj for m in rendered.hooks("pre-delete") if m.kind == "Job")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MUTATING_WEBHOOK_CONFIGURATION"] == name


@pytest.mark.parametrize(
    "values",
    [
        {"stampCreator": {"enabled": True, "failurePolicy": "Retry"}},
        {"stampCreator": {"enabled": "yes"}},
        {"execSessions": {"ratePerSecond": 0}},
        {"execSessions": {"queueSize": 0}},
        {"execSessions": {"unknown": 1}},
    ],
)
def test_the_values_schema_refuses_bad_settings(values: dict[str, Any]) -> None:
    with pytest.raises(Exception, match=r"stampCreator|execSessions"):
        chart.render({"webhook": values})


def test_exec_sessions_are_on_by_default_and_their_bounds_reach_the_webhook() -> None:
    env = _env()
    assert env["MINERGUARD_WEBHOOK_EXEC_SESSIONS"] == "true"
    assert env["MINERGUARD_WEBHOOK_EXEC_SESSION_RATE"] == "20"
    assert env["MINERGUARD_WEBHOOK_EXEC_SESSION_BURST"] == "100"
    assert env["MINERGUARD_WEBHOOK_EXEC_SESSION_CAPACITY"] == "500"
    tuned = _env({"webhook": {"execSessions": {"ratePerSecond": 2.5, "queueSize": 50}}})
    assert tuned["MINERGUARD_WEBHOOK_EXEC_SESSION_RATE"] == "2.5"
    assert tuned["MINERGUARD_WEBHOOK_EXEC_SESSION_CAPACITY"] == "50"
    off = _env({"webhook": {"execSessions": {"enabled": False}}})
    assert off["MINERGUARD_WEBHOOK_EXEC_SESSIONS"] == "false"
    assert "MINERGUARD_WEBHOOK_EXEC_SESSION_RATE" not in off


def test_the_webhook_may_create_the_events_it_records_sessions_with() -> None:
    role = chart.render().one("ClusterRole", "-webhook")
    assert {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]} in role["rules"]

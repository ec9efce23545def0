"""The chart's side of investigations: the operator's settings, and its way to registries."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.integration.chart import chart


def _operator_policy(values: dict[str, Any]) -> Any:
    rendered = chart.render(values)
    (found,) = [m for m in rendered.of_kind("NetworkPolicy") if m.name.endswith("-operator")]
    return chart.typed(client.V1NetworkPolicy, found.obj)


def _egress_ports(policy: Any) -> set[int]:
    return {p.port for rule in policy.spec.egress for p in rule.ports}


def test_the_operator_may_reach_registries_only_while_it_investigates() -> None:
    investigating = {"operator": {"investigation": {"insecureRegistries": ["registry.local:5000"]}}}
    assert _egress_ports(_operator_policy(investigating)) == {53, 443, 6443, 5000}
    off = {"operator": {"investigation": {"enabled": False}}}
    assert _egress_ports(_operator_policy(off)) == {53, 443, 6443}


def test_the_operator_reads_no_pull_secrets_unless_asked() -> None:
    values = {"operator": {"investigation": {"registryAllowedNetworks": ["10.96.0.0/12"]}}}
    deployment = chart.render(values).one("Deployment", "-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MINERGUARD_OPERATOR_INVESTIGATE"] == "true"
    assert env["MINERGUARD_OPERATOR_READ_PULL_SECRETS"] == "false"
    assert env["MINERGUARD_OPERATOR_REGISTRY_ALLOWED_NETWORKS"] == '["10.96.0.0/12"]'


def test_the_operator_may_read_secrets_only_when_told_to_read_pull_secrets() -> None:
    def secrets_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
        rendered = chart.render(values)
        (role,) = [m.obj for m in rendered.of_kind("ClusterRole") if m.name.endswith("-operator")]
        return [r for r in role["rules"] if "secrets" in r.get("resources", [])]

    assert secrets_rules({}) == []
    reading = {"operator": {"investigation": {"readPullSecrets": True}}}
    assert secrets_rules(reading) == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    ]


def _operator_env(values: dict[str, Any]) -> dict[str, str | None]:
    deployment = chart.render(values).one("Deployment", "-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def _policy_rendered(values: dict[str, Any], suffix: str) -> bool:
    return any(
        m.name.endswith(suffix) for m in chart.render(values).of_kind("ValidatingAdmissionPolicy")
    )


STAMPING = {"webhook": {"stampCreator": {"enabled": True}}}
REPORT_ONLY = {"admissionPolicy": {"validationActions": ["Warn", "Audit"]}}
NO_POLICIES = {"admissionPolicy": {"enabled": False}}


@pytest.mark.parametrize(
    ("values", "rendered", "trusted"),
    [
        pytest.param({}, False, False, id="no-stamping-webhook"),
        pytest.param(STAMPING, True, True, id="stamped-and-guarded"),
        pytest.param({**STAMPING, **NO_POLICIES}, False, False, id="stamped-without-guard"),
        pytest.param({**STAMPING, **REPORT_ONLY}, True, False, id="guard-only-reports"),
        pytest.param(
            {"webhook": {"stampCreator": {"enabled": True, "failurePolicy": "Ignore"}}},
            True,
            False,
            id="stamping-fails-open",
        ),
    ],
)
def test_the_operator_believes_a_creator_stamp_only_when_nobody_else_can_write_it(
    values: dict[str, Any], rendered: bool, trusted: bool
) -> None:
    assert _policy_rendered(values, "-created-by") is rendered
    env = _operator_env(values)
    assert env["MINERGUARD_OPERATOR_CREATOR_STAMPS_TRUSTED"] == str(trusted).lower()


@pytest.mark.parametrize(
    ("values", "rendered", "guarded"),
    [
        pytest.param({}, True, True, id="recorded-and-guarded"),
        pytest.param(
            {"webhook": {"execSessions": {"enabled": False}}}, False, False, id="not-recorded"
        ),
        pytest.param(NO_POLICIES, False, False, id="no-guard"),
        pytest.param(REPORT_ONLY, True, False, id="guard-only-reports"),
    ],
)
def test_the_operator_trusts_exec_session_events_only_when_nobody_else_can_write_them(
    values: dict[str, Any], rendered: bool, guarded: bool
) -> None:
    assert _policy_rendered(values, "-exec-sessions") is rendered
    env = _operator_env(values)
    assert env["MINERGUARD_OPERATOR_EXEC_SESSIONS_GUARDED"] == str(guarded).lower()


def test_the_operator_may_get_a_node_only_while_it_investigates() -> None:
    """The node's platform picks a multi-arch image's history; nothing else is read of it."""

    def nodes_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
        rendered = chart.render(values)
        (role,) = [m.obj for m in rendered.of_kind("ClusterRole") if m.name.endswith("-operator")]
        return [r for r in role["rules"] if "nodes" in r.get("resources", [])]

    assert nodes_rules({}) == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
    assert nodes_rules({"operator": {"investigation": {"enabled": False}}}) == []


def test_the_operator_may_get_exactly_the_workload_crds_it_traces_pods_to() -> None:
    """The rule and the workload table (what the investigation follows) cannot drift apart."""
    from minerguard.workloads import CRD_KINDS

    def crd_reads(values: dict[str, Any]) -> set[tuple[str, str]]:
        rendered = chart.render(values)
        (role,) = [m.obj for m in rendered.of_kind("ClusterRole") if m.name.endswith("-operator")]
        groups = {kind.group for kind in CRD_KINDS}
        return {
            (group, resource)
            for rule in role["rules"]
            if rule.get("verbs") == ["get"] and set(rule.get("apiGroups", [])) <= groups
            for group in rule["apiGroups"]
            for resource in rule["resources"]
        }

    assert crd_reads({}) == {(kind.group, kind.resource) for kind in CRD_KINDS}
    assert crd_reads({"operator": {"investigation": {"enabled": False}}}) == set()

"""The chart's side of investigations: the operator's settings, and its way to registries."""

from __future__ import annotations

from typing import Any

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

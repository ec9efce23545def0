"""Security properties of the rendered chart, asserted on typed Kubernetes objects."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.integration.chart import chart

_BASE_CAPS = {"SYS_PTRACE", "DAC_READ_SEARCH"}
_WORKLOAD_RESOURCES = {
    "deployments",
    "statefulsets",
    "daemonsets",
    "replicasets",
    "replicationcontrollers",
    "jobs",
    "cronjobs",
}
_DESTRUCTIVE = {"delete", "deletecollection", "patch", "update", "create", "*"}


def _agent(values: dict[str, Any] | None = None) -> Any:
    return chart.typed(client.V1DaemonSet, chart.render(values).one("DaemonSet", "-agent"))


def _agent_container(ds: Any) -> Any:
    (container,) = ds.spec.template.spec.containers
    assert isinstance(container, client.V1Container)
    return container


SYSTEM_ENTRY = "system.validate.minerguard.io"


def _webhooks(rendered: chart.Render, *, system: bool = False) -> list[Any]:
    """The ordinary entries; with ``system``, the system namespaces' entry too."""
    vwc = chart.typed(
        client.V1ValidatingWebhookConfiguration, rendered.one("ValidatingWebhookConfiguration")
    )
    assert vwc.webhooks
    return [w for w in vwc.webhooks if system or w.name != SYSTEM_ENTRY]


def test_the_agent_is_not_privileged_by_default() -> None:
    ds = _agent()
    context = _agent_container(ds).security_context
    assert context.privileged is False
    assert context.allow_privilege_escalation is False
    assert context.read_only_root_filesystem is True
    assert context.capabilities.drop == ["ALL"]
    assert set(context.capabilities.add) == _BASE_CAPS | {"NET_ADMIN", "KILL"}
    assert context.seccomp_profile.type == "RuntimeDefault"


def test_the_agent_sees_the_host_through_read_only_mounts_only() -> None:
    ds = _agent()
    pod = ds.spec.template.spec
    assert pod.host_pid is True
    assert pod.host_network is True
    assert pod.host_ipc is not True
    assert pod.dns_policy == "ClusterFirstWithHostNet"
    host_paths = {v.name: v.host_path.path for v in pod.volumes if v.host_path}
    assert sorted(host_paths.values()) == ["/proc", "/sys/fs/cgroup"]
    for mount in _agent_container(ds).volume_mounts:
        if mount.name in host_paths:
            assert mount.read_only is True, mount.name
            assert mount.mount_path.startswith("/host/")


def test_the_agent_runs_on_every_node_with_bounded_resources() -> None:
    ds = _agent()
    tolerations = ds.spec.template.spec.tolerations
    assert any(t.operator == "Exists" and not t.key and not t.effect for t in tolerations)
    resources = _agent_container(ds).resources
    assert set(resources.limits) == {"cpu", "memory"}
    assert set(resources.requests) == {"cpu", "memory"}


def test_fanotify_adds_sys_admin_and_nothing_else() -> None:
    ds = chart.typed(client.V1DaemonSet, chart.render_profile("fanotify").one("DaemonSet"))
    context = _agent_container(ds).security_context
    assert set(context.capabilities.add) == _BASE_CAPS | {"NET_ADMIN", "KILL", "SYS_ADMIN"}
    assert context.privileged is False
    # The API server refuses allowPrivilegeEscalation=false together with SYS_ADMIN.
    assert context.allow_privilege_escalation is None


@pytest.mark.parametrize("profile", [p for p in chart.PROFILES if p != "fanotify"])
def test_only_the_fanotify_feature_grants_sys_admin(profile: str) -> None:
    for ds in chart.render_profile(profile).of_kind("DaemonSet"):
        caps = chart.typed(client.V1DaemonSet, ds.obj).spec.template.spec.containers[0]
        assert "SYS_ADMIN" not in caps.security_context.capabilities.add


def test_the_network_feature_adds_net_admin_and_net_raw_only_when_asked() -> None:
    features = {"procConnector": False, "killProcess": False, "fanotify": False}
    context = _agent_container(_agent({"agent": {"features": features}})).security_context
    assert "NET_RAW" not in context.capabilities.add
    ds = _agent({"agent": {"features": {**features, "network": True}}})
    container = _agent_container(ds)
    assert set(container.security_context.capabilities.add) == _BASE_CAPS | {
        "NET_ADMIN",
        "NET_RAW",
    }
    assert {"name": "MINERGUARD_AGENT_NETWORK", "value": "true"} in [
        {"name": e.name, "value": e.value} for e in container.env
    ]


def test_each_capability_follows_its_feature() -> None:
    features = {"procConnector": False, "killProcess": False, "fanotify": False}
    ds = _agent({"agent": {"features": features}})
    assert set(_agent_container(ds).security_context.capabilities.add) == _BASE_CAPS
    ds = _agent({"agent": {"features": {**features, "killProcess": True}}})
    assert set(_agent_container(ds).security_context.capabilities.add) == _BASE_CAPS | {"KILL"}


@pytest.mark.parametrize("profile", chart.PROFILES)
def test_no_pod_but_the_agent_uses_host_namespaces_or_root(profile: str) -> None:
    rendered = chart.render_profile(profile)
    for manifest in rendered.of_kind("Deployment") + rendered.of_kind("Job"):
        template = manifest.obj["spec"]["template"]
        pod = chart.typed(client.V1PodSpec, template["spec"])
        _assert_restricted(pod, manifest.name)
    for manifest in rendered.of_kind("Pod"):
        _assert_restricted(chart.typed(client.V1Pod, manifest.obj).spec, manifest.name)


def _assert_restricted(pod: Any, name: str) -> None:
    assert not pod.host_pid, name
    assert not pod.host_network, name
    assert not pod.host_ipc, name
    assert pod.security_context.run_as_non_root is True, name
    for container in pod.containers:
        context = container.security_context
        assert context.allow_privilege_escalation is False, name
        assert context.read_only_root_filesystem is True, name
        assert context.capabilities.drop == ["ALL"], name
        assert not context.capabilities.add, name
        assert not context.privileged, name
    assert not [v for v in pod.volumes or [] if v.host_path], name


@pytest.mark.parametrize("profile", chart.PROFILES)
def test_only_the_system_entry_sees_kube_system_and_none_sees_its_own_namespace(
    profile: str,
) -> None:
    rendered = chart.render_profile(profile)
    expected = {"kube-system", chart.target_namespace(rendered), rendered.namespace}
    expected |= set(rendered.values["excludedNamespaces"])
    if rendered.values.get("namespaceOverride"):
        expected.discard(rendered.namespace)
    for webhook in _webhooks(rendered):
        (expression,) = webhook.namespace_selector.match_expressions
        assert expression.key == "kubernetes.io/metadata.name"
        assert expression.operator == "NotIn"
        assert set(expression.values) == expected
    # The system namespaces' entry (failurePolicy Ignore) sees the excluded namespaces, never
    # the one minerguard runs in.
    for webhook in _webhooks(rendered, system=True):
        if webhook.name == SYSTEM_ENTRY:
            assert webhook.failure_policy == "Ignore"
            (expression,) = webhook.namespace_selector.match_expressions
            assert expression.operator == "In"
            assert set(expression.values) == expected - {chart.target_namespace(rendered)}


@pytest.mark.parametrize("profile", chart.PROFILES)
def test_the_default_policy_excludes_kube_system_and_its_own_namespace(profile: str) -> None:
    rendered = chart.render_profile(profile)
    policy = rendered.one("MinerPolicy")
    excluded = set(policy["spec"]["excludedNamespaces"])
    assert {"kube-system", chart.target_namespace(rendered)} <= excluded
    assert set(rendered.values["excludedNamespaces"]) <= excluded


def test_the_default_policy_is_enforcing_with_builtin_signatures() -> None:
    spec = chart.render().one("MinerPolicy")["spec"]
    assert spec["mode"] == "Enforce"
    assert spec["builtinSignatures"] is True
    assert spec["actions"] == {"admission": "Deny", "runtime": ["Alert", "DeletePod"]}


def test_the_audit_profile_only_warns_and_alerts() -> None:
    rendered = chart.render_profile("audit")
    spec = rendered.one("MinerPolicy")["spec"]
    assert spec["mode"] == "Audit"
    assert spec["actions"] == {"admission": "Warn", "runtime": ["Alert"]}
    assert {w.failure_policy for w in _webhooks(rendered)} == {"Ignore"}


def test_the_default_policy_can_be_turned_off() -> None:
    assert chart.render({"defaultPolicy": {"enabled": False}}).of_kind("MinerPolicy") == []


def test_custom_resources_are_post_install_hooks_owned_by_the_release() -> None:
    rendered = chart.render()
    for manifest in rendered.of_kind("MinerPolicy") + rendered.of_kind("ClusterKopfPeering"):
        assert manifest.annotations["helm.sh/hook"] == "post-install,post-upgrade"
        assert manifest.annotations["meta.helm.sh/release-name"] == chart.RELEASE
        assert manifest.annotations["meta.helm.sh/release-namespace"] == chart.NAMESPACE
        assert manifest.obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_failure_policy_and_timeout_come_from_values() -> None:
    rendered = chart.render({"webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 7}})
    for webhook in _webhooks(rendered):
        assert webhook.failure_policy == "Ignore"
        assert webhook.timeout_seconds == 7
    deployment = rendered.one("Deployment", "-webhook")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MINERGUARD_WEBHOOK_ADMISSION_TIMEOUT_SECONDS"] == "7"
    for webhook in _webhooks(chart.render()):
        assert webhook.failure_policy == "Fail"
        assert webhook.timeout_seconds == 10


def test_the_webhook_rules_cover_pods_workloads_and_exec() -> None:
    seen: set[tuple[str, str]] = set()
    for webhook in _webhooks(chart.render()):
        assert webhook.side_effects == "NoneOnDryRun"
        assert webhook.admission_review_versions == ["v1"]
        assert webhook.client_config.service.path == "/validate"
        for rule in webhook.rules:
            seen |= {(r, op) for r in rule.resources for op in rule.operations}
    for resource in ["pods", *_WORKLOAD_RESOURCES]:
        assert {(resource, "CREATE"), (resource, "UPDATE")} <= seen, resource
    assert {("pods/exec", "CONNECT"), ("pods/attach", "CONNECT")} <= seen
    assert ("pods/ephemeralcontainers", "UPDATE") in seen


def test_match_conditions_skip_unchanged_updates_and_can_be_turned_off() -> None:
    conditions = {
        w.name: [c.name for c in w.match_conditions or []] for w in _webhooks(chart.render())
    }
    assert conditions == {
        "pods.validate.minerguard.io": ["spec-changed"],
        "workloads.validate.minerguard.io": ["template-changed"],
        "crds.validate.minerguard.io": ["spec-changed"],
        "exec.validate.minerguard.io": [],
    }
    off = chart.render({"webhook": {"skipUnchangedUpdates": False}})
    assert all(not w.match_conditions for w in _webhooks(off, system=True))


def test_the_webhook_deployment_is_highly_available() -> None:
    rendered = chart.render()
    deployment = chart.typed(client.V1Deployment, rendered.one("Deployment", "-webhook"))
    assert deployment.spec.replicas == 3
    assert deployment.spec.strategy.rolling_update.max_unavailable == 0
    pod = deployment.spec.template.spec
    assert pod.priority_class_name == "system-cluster-critical"
    preferred = pod.affinity.pod_anti_affinity.preferred_during_scheduling_ignored_during_execution
    assert preferred[0].pod_affinity_term.topology_key == "kubernetes.io/hostname"
    probe = pod.containers[0].readiness_probe
    assert probe.http_get.path == "/readyz"
    assert probe.http_get.scheme == "HTTPS"
    pdb = chart.typed(client.V1PodDisruptionBudget, rendered.one("PodDisruptionBudget"))
    assert pdb.spec.selector.match_labels == deployment.spec.selector.match_labels
    assert pdb.spec.max_unavailable == 1


def test_the_operator_runs_two_peered_replicas() -> None:
    rendered = chart.render()
    deployment = chart.typed(client.V1Deployment, rendered.one("Deployment", "-operator"))
    assert deployment.spec.replicas == 2
    container = deployment.spec.template.spec.containers[0]
    env = {e.name: e for e in container.env}
    assert env["POD_ID"].value_from.field_ref.field_path == "metadata.name"
    peering = rendered.one("ClusterKopfPeering")
    assert env["MINERGUARD_OPERATOR_PEERING_NAME"].value == peering["metadata"]["name"]
    assert container.liveness_probe.http_get.path == "/healthz"
    ports = {p.name: p.container_port for p in container.ports}
    assert ports == {"metrics": 8080, "health": 8081}


def _rules_by_component(rendered: chart.Render) -> dict[str, list[Any]]:
    rules: dict[str, list[Any]] = {}
    for manifest in rendered.of_kind("ClusterRole") + rendered.of_kind("Role"):
        role = chart.typed(client.V1ClusterRole, manifest.obj)
        component = manifest.obj["metadata"]["labels"]["app.kubernetes.io/component"]
        rules.setdefault(component, []).extend(role.rules or [])
    return rules


def _grants(rules: list[Any], resource: str, verb: str) -> bool:
    return any(resource in (r.resources or []) and verb in r.verbs for r in rules)


@pytest.mark.parametrize("profile", chart.PROFILES)
def test_no_role_uses_wildcards(profile: str) -> None:
    for component, rules in _rules_by_component(chart.render_profile(profile)).items():
        for rule in rules:
            assert "*" not in rule.verbs, component
            assert "*" not in (rule.resources or []), component
            assert "*" not in (rule.api_groups or []), component


def test_only_the_operator_deletes_pods_or_changes_workloads() -> None:
    rules = _rules_by_component(chart.render())
    assert set(rules) == {"webhook", "agent", "operator", "cleanup"}
    for component, component_rules in rules.items():
        deletes_pods = _grants(component_rules, "pods", "delete")
        changes_workloads = any(
            _grants(component_rules, resource, verb)
            for resource in _WORKLOAD_RESOURCES | {f"{r}/scale" for r in _WORKLOAD_RESOURCES}
            for verb in _DESTRUCTIVE
        )
        assert deletes_pods == (component == "operator"), component
        assert changes_workloads == (component == "operator"), component
    operator = rules["operator"]
    for resource in ("deployments/scale", "statefulsets/scale", "replicasets/scale"):
        assert _grants(operator, resource, "patch")
    for resource in ("cronjobs", "jobs", "daemonsets"):
        assert _grants(operator, resource, "patch")
    assert _grants(operator, "networkpolicies", "create")
    assert _grants(operator, "clusterkopfpeerings", "patch")


def test_the_agent_reads_pods_and_only_writes_detections_and_events() -> None:
    agent = _rules_by_component(chart.render())["agent"]
    for rule in agent:
        writes = set(rule.verbs) & _DESTRUCTIVE
        if writes:
            assert set(rule.resources) <= {"minerdetections", "events"}, rule
            assert writes <= {"create", "patch"}
            assert "patch" not in writes or rule.resources == ["events"]
    assert _grants(agent, "pods", "watch")
    assert _grants(agent, "minerdetections", "create")
    assert _grants(agent, "events", "create")


def test_the_webhook_reads_secrets_by_name_only_and_only_when_asked() -> None:
    asked = chart.render({"webhook": {"rbac": {"readImagePullSecrets": True}}})
    webhook = _rules_by_component(asked)["webhook"]
    for rule in webhook:
        assert set(rule.verbs) <= {"get", "list", "watch", "create"}
        if "secrets" in rule.resources:
            assert rule.verbs == ["get"]
        if "create" in rule.verbs:
            assert rule.resources in (["minerdetections"], ["events"])
    assert _grants(webhook, "minerpolicies", "watch")
    assert _grants(webhook, "secrets", "get")
    default = _rules_by_component(chart.render())
    assert not _grants(default["webhook"], "secrets", "get")


def test_a_pre_delete_hook_removes_exactly_the_webhook_configuration() -> None:
    rendered = chart.render()
    vwc_name = rendered.one("ValidatingWebhookConfiguration")["metadata"]["name"]
    hooks = rendered.hooks("pre-delete")
    assert {m.kind for m in hooks} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Job",
    }
    job = chart.typed(client.V1Job, next(m.obj for m in hooks if m.kind == "Job"))
    container = job.spec.template.spec.containers[0]
    assert {e.name: e.value for e in container.env}["WEBHOOK_CONFIGURATION"] == vwc_name
    role = chart.typed(client.V1ClusterRole, next(m.obj for m in hooks if m.kind == "ClusterRole"))
    (rule,) = role.rules
    assert rule.resources == ["validatingwebhookconfigurations"]
    assert rule.resource_names == [vwc_name]
    assert set(rule.verbs) == {"get", "delete"}
    # The hook's own RBAC exists before the Job runs.
    weights = {m.kind: int(m.annotations["helm.sh/hook-weight"]) for m in hooks}
    assert max(w for k, w in weights.items() if k != "Job") < weights["Job"]


def test_helm_test_checks_the_webhook_verdicts() -> None:
    expectations = {
        "default": "deny",
        "audit": "warn",
    }
    for profile, expect in expectations.items():
        (pod,) = [m for m in chart.render_profile(profile).hooks("test") if m.kind == "Pod"]
        env = {e["name"]: e["value"] for e in pod.obj["spec"]["containers"][0]["env"]}
        assert env["EXPECT"] == expect
        assert env["WEBHOOK_URL"] == "https://mg-minerguard-webhook.minerguard.svc:443"
    off = chart.render({"defaultPolicy": {"enabled": False}}).hooks("test")
    (pod_obj,) = [m.obj for m in off if m.kind == "Pod"]
    assert {e["name"]: e["value"] for e in pod_obj["spec"]["containers"][0]["env"]}[
        "EXPECT"
    ] == "any"


def test_network_policies_deny_by_default_and_open_the_webhook_port() -> None:
    rendered = chart.render({"webhook": {"insecureRegistries": ["registry.local:5000"]}})
    policies = {
        m.name: chart.typed(client.V1NetworkPolicy, m.obj)
        for m in rendered.of_kind("NetworkPolicy")
    }
    assert set(policies) == {"mg-minerguard-webhook", "mg-minerguard-operator"}
    webhook = policies["mg-minerguard-webhook"]
    assert set(webhook.spec.policy_types) == {"Ingress", "Egress"}
    assert [p.port for rule in webhook.spec.ingress for p in rule.ports] == [8443]
    egress_ports = {p.port for rule in webhook.spec.egress for p in rule.ports}
    assert egress_ports == {53, 443, 6443, 5000}


@pytest.mark.parametrize(
    ("values", "kinds"),
    [
        ({}, set()),
        (
            {
                "metrics": {
                    "serviceMonitor": {"enabled": True},
                    "prometheusRule": {"enabled": True},
                    "grafanaDashboard": {"enabled": True},
                }
            },
            {"ServiceMonitor", "PrometheusRule", "ConfigMap"},
        ),
    ],
)
def test_monitoring_objects_only_when_asked(values: dict[str, Any], kinds: set[str]) -> None:
    rendered = chart.render(values)
    found = {m.kind for m in rendered.manifests if "/monitoring/" in m.template}
    assert found == kinds
    if kinds:
        assert len(rendered.of_kind("ServiceMonitor")) == 3

"""Entry points of an affected workload, decided from plain API objects (no client, no cluster).

Each test is one door an attacker could have come through (or one that only looks like a door),
built as the API server would serve it.
"""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.api.investigation import Basis, EntryPoint, Severity
from minerguard_operator.decide import exposure


def pod(
    labels: dict[str, str] | None = None, namespace: str = "apps", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": [{"name": "main", "image": "app:1"}]}
    body.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": namespace, "labels": labels or {"app": "web"}},
        "spec": body,
    }


def service(
    name: str,
    type_: str = "ClusterIP",
    selector: dict[str, str] | None = None,
    namespace: str = "apps",
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type_,
        "selector": {"app": "web"} if selector is None else selector,
        "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}],
    }
    body.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
        "status": status or {},
    }


def kinds(found: list[EntryPoint]) -> list[tuple[str, str, Severity]]:
    return [(e.kind, e.name, e.severity) for e in found]


# -- Services ------------------------------------------------------------------------------


def test_a_load_balancer_with_an_external_address_and_no_source_ranges_is_a_high_entry() -> None:
    lb = service(
        "web", "LoadBalancer", status={"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}
    )
    found = exposure.services_exposing(pod(), [lb])
    assert kinds(found) == [("Service", "apps/web", Severity.HIGH)]
    assert "203.0.113.9" in found[0].detail
    assert "loadBalancerSourceRanges" in found[0].remedy
    assert found[0].basis is Basis.API


def test_a_load_balancer_limited_to_source_ranges_is_medium() -> None:
    lb = service("web", "LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8"])
    assert kinds(exposure.services_exposing(pod(), [lb])) == [
        ("Service", "apps/web", Severity.MEDIUM)
    ]


def test_a_source_range_of_the_whole_internet_restricts_nothing() -> None:
    lb = service("web", "LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8", "0.0.0.0/0"])
    assert kinds(exposure.services_exposing(pod(), [lb]))[0][2] is Severity.HIGH


def test_a_node_port_service_is_medium_and_names_the_node_port() -> None:
    found = exposure.services_exposing(pod(), [service("web", "NodePort")])
    assert kinds(found) == [("Service", "apps/web", Severity.MEDIUM)]
    assert "30080" in found[0].detail


def test_a_cluster_ip_service_alone_is_no_entry_point_but_is_routed() -> None:
    services = [service("internal")]
    assert exposure.services_exposing(pod(), services) == []
    assert exposure.routed_services(pod(), services) == ["internal"]


def test_external_ips_on_a_cluster_ip_service_expose_it() -> None:
    found = exposure.services_exposing(pod(), [service("web", externalIPs=["198.51.100.4"])])
    assert kinds(found) == [("Service", "apps/web", Severity.HIGH)]
    assert "198.51.100.4" in found[0].detail


def test_a_service_selects_by_every_key_of_its_selector() -> None:
    labelled = pod({"app": "web", "tier": "front"})
    services = [
        service("both", "NodePort", selector={"app": "web", "tier": "front"}),
        service("other-tier", "NodePort", selector={"app": "web", "tier": "back"}),
        service("missing-key", "NodePort", selector={"app": "web", "zone": "a"}),
    ]
    assert [e.name for e in exposure.services_exposing(labelled, services)] == ["apps/both"]


def test_a_service_without_a_selector_selects_no_pod() -> None:
    # Endpoints are then managed by hand: the Service does not route to pods by label.
    services = [service("manual", "NodePort", selector={}), service("none", "NodePort")]
    services[1]["spec"].pop("selector")
    assert exposure.services_exposing(pod(), services) == []
    assert exposure.routed_services(pod(), services) == []


def test_a_service_in_another_namespace_does_not_select_the_pod() -> None:
    assert exposure.services_exposing(pod(), [service("web", "NodePort", namespace="x")]) == []


# -- Ingresses and Gateway API routes -----------------------------------------------------


def ingress(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": spec,
    }


def test_an_ingress_rule_routing_to_a_service_of_the_pod_is_an_entry_point() -> None:
    rule = {
        "host": "shop.example.com",
        "http": {"paths": [{"path": "/", "backend": {"service": {"name": "internal"}}}]},
    }
    found = exposure.ingress_routes(["internal"], [ingress("shop", rules=[rule])], [], [])
    assert kinds(found) == [("Ingress", "apps/shop", Severity.HIGH)]
    assert "shop.example.com" in found[0].detail


def test_an_ingress_default_backend_routes_every_host() -> None:
    default = {"service": {"name": "internal", "port": {"number": 80}}}
    found = exposure.ingress_routes(["internal"], [ingress("all", defaultBackend=default)], [], [])
    assert kinds(found) == [("Ingress", "apps/all", Severity.HIGH)]
    assert "*" in found[0].detail


def test_an_ingress_to_another_service_is_not_an_entry_point() -> None:
    rule = {"http": {"paths": [{"backend": {"service": {"name": "other"}}}]}}
    assert exposure.ingress_routes(["internal"], [ingress("x", rules=[rule])], [], []) == []


def gateway(name: str, namespace: str = "infra") -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": "public",
            "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}],
        },
        "status": {"addresses": [{"type": "IPAddress", "value": "203.0.113.50"}]},
    }


def route(
    namespace: str, backend: dict[str, Any], parent_ns: str | None = "infra"
) -> dict[str, Any]:
    parent: dict[str, Any] = {"name": "edge"}
    if parent_ns is not None:
        parent["namespace"] = parent_ns
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "shop", "namespace": namespace},
        "spec": {
            "parentRefs": [parent],
            "hostnames": ["shop.example.com"],
            "rules": [{"backendRefs": [backend]}],
        },
    }


def test_an_httproute_in_another_namespace_naming_the_pods_namespace_is_an_entry_point() -> None:
    cross = route("frontend", {"name": "internal", "namespace": "apps", "port": 80})
    found = exposure.ingress_routes(["internal"], [], [gateway("edge")], [cross], namespace="apps")
    assert kinds(found) == [("HTTPRoute", "frontend/shop", Severity.HIGH)]
    detail = found[0].detail
    assert "shop.example.com" in detail
    assert "infra/edge" in detail
    assert "203.0.113.50" in detail
    assert "ReferenceGrant" in detail


def test_an_httproute_backend_without_namespace_means_the_routes_own_namespace() -> None:
    same_name_elsewhere = route("frontend", {"name": "internal", "port": 80})
    assert (
        exposure.ingress_routes(["internal"], [], [], [same_name_elsewhere], namespace="apps") == []
    )
    own = route("apps", {"name": "internal", "port": 80}, parent_ns=None)
    found = exposure.ingress_routes(
        ["internal"], [], [gateway("edge", "apps")], [own], namespace="apps"
    )
    assert kinds(found) == [("HTTPRoute", "apps/shop", Severity.HIGH)]
    assert "apps/edge" in found[0].detail


def test_an_httproute_backend_of_another_kind_is_not_a_service() -> None:
    other = route(
        "apps", {"name": "internal", "kind": "ServiceImport", "group": "multicluster.x-k8s.io"}
    )
    assert exposure.ingress_routes(["internal"], [], [], [other], namespace="apps") == []


def test_an_ingress_and_a_route_to_the_same_service_are_both_listed() -> None:
    rule = {
        "host": "shop.example.com",
        "http": {"paths": [{"path": "/", "backend": {"service": {"name": "internal"}}}]},
    }
    own = route("apps", {"name": "internal", "port": 80})
    found = exposure.ingress_routes(
        ["internal"], [ingress("shop", rules=[rule])], [gateway("edge")], [own], namespace="apps"
    )
    assert [e.kind for e in found] == ["Ingress", "HTTPRoute"]


def test_grpc_tls_and_tcp_routes_to_the_pods_service_are_listed_by_their_kind() -> None:
    routes = []
    for kind, hostnames in (
        ("GRPCRoute", ["rpc.example.com"]),
        ("TLSRoute", ["tls.example.com"]),
        ("TCPRoute", None),
    ):
        made = route("apps", {"name": "internal", "port": 80}, parent_ns="infra")
        made["kind"] = kind
        made["metadata"]["name"] = kind.lower()
        if hostnames is None:
            del made["spec"]["hostnames"]
        else:
            made["spec"]["hostnames"] = hostnames
        routes.append(made)
    found = exposure.ingress_routes(["internal"], [], [gateway("edge")], routes, namespace="apps")
    assert kinds(found) == [
        ("GRPCRoute", "apps/grpcroute", Severity.HIGH),
        ("TLSRoute", "apps/tlsroute", Severity.HIGH),
        ("TCPRoute", "apps/tcproute", Severity.HIGH),
    ]
    assert "rpc.example.com" in found[0].detail
    assert "tls.example.com" in found[1].detail
    assert "hosts" not in found[2].detail  # TCP has no host names: every connection to the port
    assert "HTTPS:443" in found[2].detail
    assert "kubectl delete tcproute tcproute -n apps" in found[2].remedy


# -- the pod itself ------------------------------------------------------------------------


def host_mount(path: str, mount: str = "/host", **extra: Any) -> dict[str, Any]:
    return pod(
        containers=[
            {
                "name": "main",
                "image": "app:1",
                "volumeMounts": [{"name": "h", "mountPath": mount, **extra}],
            }
        ],
        volumes=[{"name": "h", "hostPath": {"path": path}}],
    )


@pytest.mark.parametrize(
    "path",
    [
        "/var/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/run/crio/crio.sock",
        "/var/run/cri-dockerd.sock",
        "/run",  # the directory holds every socket above
        "/var/run/",
        "/run/containerd",
        "/",
        "//run/./containerd/../containerd",
    ],
)
def test_a_host_mount_reaching_a_container_runtime_socket_is_high(path: str) -> None:
    found = exposure.pod_hazards(host_mount(path))
    assert [(e.kind, e.severity) for e in found] == [("RuntimeSocket", Severity.HIGH)]
    assert "main" in found[0].detail
    assert "hostPath" in found[0].remedy


def test_a_sub_path_into_a_broad_host_mount_is_judged_by_where_it_lands() -> None:
    found = exposure.pod_hazards(host_mount("/", subPath="run/containerd"))
    assert [e.kind for e in found] == ["RuntimeSocket"]
    assert exposure.pod_hazards(host_mount("/", subPath="var/log")) == []


def test_an_ordinary_host_mount_is_not_a_runtime_socket() -> None:
    assert exposure.pod_hazards(host_mount("/var/log")) == []
    assert exposure.pod_hazards(host_mount("/run-data")) == []


def test_a_host_mount_no_container_uses_is_no_hazard() -> None:
    unused = pod(volumes=[{"name": "h", "hostPath": {"path": "/var/run/docker.sock"}}])
    assert exposure.pod_hazards(unused) == []


def test_a_privileged_ephemeral_container_is_flagged() -> None:
    debug = {"name": "debugger", "image": "busybox", "securityContext": {"privileged": True}}
    found = exposure.pod_hazards(pod(ephemeralContainers=[debug]))
    assert [(e.kind, e.severity) for e in found] == [("Privileged", Severity.HIGH)]
    assert "debugger" in found[0].detail
    assert "ephemeral" in found[0].detail


def test_a_privileged_init_container_is_flagged() -> None:
    init = {"name": "setup", "image": "busybox", "securityContext": {"privileged": True}}
    assert [e.kind for e in exposure.pod_hazards(pod(initContainers=[init]))] == ["Privileged"]


def test_host_namespaces_are_flagged_each() -> None:
    found = exposure.pod_hazards(pod(hostPID=True, hostNetwork=True, hostIPC=True))
    assert kinds(found) == [
        ("HostPID", "apps/web-1", Severity.HIGH),
        ("HostNetwork", "apps/web-1", Severity.MEDIUM),
        ("HostIPC", "apps/web-1", Severity.MEDIUM),
    ]
    assert all("pod-security.kubernetes.io/enforce=baseline" in e.remedy for e in found)


def test_sys_admin_with_privilege_escalation_is_flagged_once() -> None:
    container = {
        "name": "main",
        "image": "app:1",
        "securityContext": {"capabilities": {"add": ["CAP_SYS_ADMIN"]}},
    }
    found = exposure.pod_hazards(pod(containers=[container]))
    assert [(e.kind, e.severity) for e in found] == [("Capabilities", Severity.HIGH)]
    assert "SYS_ADMIN" in found[0].detail
    assert "allowPrivilegeEscalation" in found[0].detail


def test_a_host_port_is_flagged_as_exposure() -> None:
    container = {
        "name": "main",
        "image": "app:1",
        "ports": [{"containerPort": 8080, "hostPort": 80}],
    }
    found = exposure.pod_hazards(pod(containers=[container]))
    assert [(e.kind, e.severity) for e in found] == [("HostPort", Severity.MEDIUM)]
    assert "main:80/TCP" in found[0].detail


def test_a_plain_pod_has_no_hazards() -> None:
    assert exposure.pod_hazards(pod()) == []


def test_junk_in_the_pod_spec_is_ignored_not_fatal() -> None:
    junk = pod(containers=["x", {"securityContext": "y"}], volumes=[None, {"hostPath": 3}])
    assert exposure.pod_hazards(junk) == []


# -- the service account -------------------------------------------------------------------


def test_each_allowed_access_check_is_a_high_entry_and_denied_ones_are_not() -> None:
    answers: dict[tuple[str, str, str], bool | None] = {
        c.key: False for c in exposure.ACCESS_CHECKS
    }
    answers[("create", "pods", "")] = True
    answers[("list", "secrets", "")] = True
    found = exposure.account_permissions("builder", "apps", answers)
    assert [(e.kind, e.name, e.severity) for e in found] == [
        ("ServiceAccount", "apps/builder", Severity.HIGH),
        ("ServiceAccount", "apps/builder", Severity.HIGH),
    ]
    assert "create pods" in found[0].detail
    assert "list secrets" in found[1].detail
    assert all(e.basis is Basis.ACCESS_REVIEW for e in found)
    assert "system:serviceaccount:apps:builder" in found[0].remedy


def test_an_unanswered_access_check_is_never_reported_as_safe_or_as_found() -> None:
    answers: dict[tuple[str, str, str], bool | None] = {c.key: None for c in exposure.ACCESS_CHECKS}
    assert exposure.account_permissions("builder", "apps", answers) == []
    assert exposure.unanswered(answers) == [c.describe() for c in exposure.ACCESS_CHECKS]


def test_the_access_checks_cover_pods_exec_secrets_and_binding_escalation() -> None:
    asked = {(c.verb, c.resource, c.subresource, c.cluster_wide) for c in exposure.ACCESS_CHECKS}
    assert asked == {
        ("create", "pods", "", False),
        ("create", "pods", "exec", False),
        ("get", "secrets", "", False),
        ("list", "secrets", "", False),
        ("create", "rolebindings", "", False),
        ("create", "clusterrolebindings", "", True),
    }


# -- anonymous access ----------------------------------------------------------------------


def binding(
    name: str,
    role: str,
    *subjects: tuple[str, str],
    namespace: str | None = None,
    role_kind: str = "ClusterRole",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": kind, "name": who} for kind, who in subjects],
    }


PUBLIC_INFO = binding(
    "system:public-info-viewer",
    "system:public-info-viewer",
    ("Group", "system:authenticated"),
    ("Group", "system:unauthenticated"),
)


def test_a_binding_giving_a_role_to_unauthenticated_users_is_flagged() -> None:
    bad = binding("debug-all", "cluster-admin", ("Group", "system:unauthenticated"))
    found = exposure.anonymous_bindings([PUBLIC_INFO, bad], [])
    assert kinds(found) == [("AnonymousBinding", "debug-all", Severity.HIGH)]
    assert found[0].remedy == "kubectl delete clusterrolebinding debug-all"
    assert "cluster-admin" in found[0].detail


def test_a_rolebinding_to_the_anonymous_user_is_flagged_with_its_namespace() -> None:
    bad = binding("peek", "view", ("User", "system:anonymous"), namespace="apps")
    found = exposure.anonymous_bindings([], [bad])
    assert kinds(found) == [("AnonymousBinding", "apps/peek", Severity.HIGH)]
    assert found[0].remedy == "kubectl delete rolebinding peek -n apps"


def test_the_public_info_viewer_default_is_not_flagged() -> None:
    assert exposure.anonymous_bindings([PUBLIC_INFO], []) == []


def test_kubeadms_cluster_info_binding_is_not_flagged() -> None:
    kubeadm = binding(
        "kubeadm:bootstrap-signer-clusterinfo",
        "kubeadm:bootstrap-signer-clusterinfo",
        ("User", "system:anonymous"),
        namespace="kube-public",
        role_kind="Role",
    )
    assert exposure.anonymous_bindings([], [kubeadm]) == []


def test_a_default_role_widened_beyond_its_rules_is_flagged() -> None:
    widened = {
        "metadata": {"name": "system:public-info-viewer"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}],
    }
    found = exposure.anonymous_bindings([PUBLIC_INFO], [], cluster_roles=[widened])
    assert kinds(found) == [("AnonymousBinding", "system:public-info-viewer", Severity.HIGH)]
    assert "widened" in found[0].detail
    unchanged = {
        "metadata": {"name": "system:public-info-viewer"},
        "rules": [
            {
                "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            }
        ],
    }
    assert exposure.anonymous_bindings([PUBLIC_INFO], [], cluster_roles=[unchanged]) == []


def test_pre_1_14_discovery_bindings_kept_by_an_upgrade_are_low() -> None:
    legacy = binding(
        "system:discovery",
        "system:discovery",
        ("Group", "system:authenticated"),
        ("Group", "system:unauthenticated"),
    )
    assert kinds(exposure.anonymous_bindings([legacy], [])) == [
        ("AnonymousBinding", "system:discovery", Severity.LOW)
    ]


def test_bindings_for_authenticated_users_only_are_not_anonymous() -> None:
    authed = binding("ro", "view", ("Group", "system:authenticated"), ("User", "alice"))
    assert exposure.anonymous_bindings([authed], []) == []


# -- grants to every user or every service account -----------------------------------------


def role(name: str, *rules: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"metadata": metadata, "rules": list(rules)}


RUNS_PODS = role(
    "pod-runner", {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]}
)
READS_PODS = role(
    "pod-reader", {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
)


def known(*roles: dict[str, Any], kind: str = "ClusterRole") -> dict[Any, Any]:
    return {(kind, r["metadata"].get("namespace"), r["metadata"]["name"]): r for r in roles}


def test_a_pod_creating_role_for_every_authenticated_user_is_high() -> None:
    bad = binding("everyone-runs", "pod-runner", ("Group", "system:authenticated"))
    found = exposure.broad_bindings([bad], [], roles=known(RUNS_PODS))
    assert kinds(found) == [("BroadBinding", "everyone-runs", Severity.HIGH)]
    assert "system:authenticated" in found[0].detail
    assert "create pods" in found[0].detail
    assert "kubectl delete clusterrolebinding everyone-runs" in found[0].remedy


def test_cluster_admin_for_every_service_account_is_high_without_reading_the_role() -> None:
    bad = binding("all-pods-admin", "cluster-admin", ("Group", "system:serviceaccounts"))
    found = exposure.broad_bindings([bad], [], roles={})
    assert kinds(found) == [("BroadBinding", "all-pods-admin", Severity.HIGH)]
    assert "every pod" in found[0].detail


@pytest.mark.parametrize(
    "rule",
    [
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]},  # websocket exec
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["watch"]},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["escalate"],
        },
        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]},
        {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]},
        {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},
        {"apiGroups": ["example.com"], "resources": ["*"], "verbs": ["get"]},
    ],
)
def test_rights_that_run_code_read_secrets_or_escalate_are_high(rule: dict[str, Any]) -> None:
    bad = binding("wide", "wide", ("Group", "system:authenticated"))
    found = exposure.broad_bindings([bad], [], roles=known(role("wide", rule)))
    assert kinds(found) == [("BroadBinding", "wide", Severity.HIGH)]


def test_a_read_only_role_for_every_user_is_low_and_a_writing_one_medium() -> None:
    reads = binding("read", "pod-reader", ("Group", "system:authenticated"))
    writes_role = role(
        "cm-writer", {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["update"]}
    )
    writes = binding("write", "cm-writer", ("Group", "system:authenticated"))
    found = exposure.broad_bindings([reads, writes], [], roles=known(READS_PODS, writes_role))
    assert kinds(found) == [
        ("BroadBinding", "read", Severity.LOW),
        ("BroadBinding", "write", Severity.MEDIUM),
    ]


def test_a_rolebinding_to_another_namespaces_service_accounts_is_flagged() -> None:
    foreign = binding(
        "ci-runs", "pod-runner", ("Group", "system:serviceaccounts:ci"), namespace="apps"
    )
    own = binding(
        "self-runs", "pod-runner", ("Group", "system:serviceaccounts:apps"), namespace="apps"
    )
    found = exposure.broad_bindings([], [foreign, own], roles=known(RUNS_PODS))
    assert kinds(found) == [("BroadBinding", "apps/ci-runs", Severity.HIGH)]
    assert "kubectl delete rolebinding ci-runs -n apps" in found[0].remedy


def test_the_kubernetes_defaults_for_every_user_are_not_flagged_unless_widened() -> None:
    defaults = [
        binding(name, name, ("Group", "system:authenticated"))
        for name in ("system:basic-user", "system:discovery", "system:public-info-viewer")
    ] + [
        binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            ("Group", "system:serviceaccounts"),
        )
    ]
    issuer = role(
        "system:service-account-issuer-discovery",
        {
            "nonResourceURLs": ["/.well-known/openid-configuration", "/openid/v1/jwks"],
            "verbs": ["get"],
        },
    )
    assert exposure.broad_bindings(defaults, [], roles=known(issuer)) == []
    widened = role(
        "system:basic-user", {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    )
    found = exposure.broad_bindings(defaults, [], roles=known(issuer, widened))
    assert kinds(found) == [("BroadBinding", "system:basic-user", Severity.HIGH)]
    assert "widened" in found[0].detail


def test_a_default_binding_that_names_another_broad_group_is_judged_by_its_rules() -> None:
    widened = binding(
        "system:discovery",
        "system:discovery",
        ("Group", "system:authenticated"),
        ("Group", "system:serviceaccounts:ci"),
    )
    discovery = role("system:discovery", {"nonResourceURLs": ["/api", "/apis"], "verbs": ["get"]})
    found = exposure.broad_bindings([widened], [], roles=known(discovery))
    assert kinds(found) == [("BroadBinding", "system:discovery", Severity.LOW)]


def test_a_role_that_could_not_be_read_is_said_not_dropped() -> None:
    bad = binding("mystery", "custom", ("Group", "system:authenticated"))
    found = exposure.broad_bindings([bad], [], roles={})
    assert kinds(found) == [("BroadBinding", "mystery", Severity.MEDIUM)]
    assert "could not be read" in found[0].detail
    missing: dict[exposure.RoleKey, Any] = {("ClusterRole", None, "custom"): None}  # no such role
    assert exposure.broad_bindings([bad], [], roles=missing) == []


def test_a_binding_already_reported_as_anonymous_is_not_reported_twice() -> None:
    both = binding(
        "all",
        "cluster-admin",
        ("Group", "system:authenticated"),
        ("Group", "system:unauthenticated"),
    )
    assert exposure.broad_bindings([both], [], roles={}) == []
    assert kinds(exposure.anonymous_bindings([both], [])) == [
        ("AnonymousBinding", "all", Severity.HIGH)
    ]


def test_the_roles_to_read_are_those_bound_to_broad_subjects() -> None:
    bad = binding("x", "pod-runner", ("Group", "system:authenticated"))
    scoped = binding(
        "y", "helper", ("Group", "system:serviceaccounts:ci"), namespace="apps", role_kind="Role"
    )
    named = binding("z", "other", ("User", "alice"))
    admin = binding("w", "cluster-admin", ("Group", "system:authenticated"))
    assert exposure.broad_roles_bound([bad, named, admin], [scoped]) == [
        ("ClusterRole", None, "pod-runner"),
        ("Role", "apps", "helper"),
    ]


def test_junk_bindings_and_roles_are_ignored_not_fatal() -> None:
    junk: list[Any] = [None, 3, {"subjects": "x"}, {"roleRef": [], "subjects": [None, {"kind": 1}]}]
    assert (
        exposure.broad_bindings(junk, junk, roles={("ClusterRole", None, "?"): {"rules": 5}}) == []
    )
    assert exposure.broad_roles_bound(junk, junk) == []


# -- whether the cluster-wide review could be read -----------------------------------------


def test_a_complete_review_is_a_true_access_reviewed_condition() -> None:
    condition = exposure.access_reviewed([], unknowns=[], flagged=2, now="T1", generation=3)
    assert condition["type"] == exposure.ACCESS_REVIEWED == "AccessReviewed"
    assert (condition["status"], condition["reason"]) == ("True", "Reviewed")
    assert "2" in condition["message"]
    assert condition["lastTransitionTime"] == "T1"
    assert condition["observedGeneration"] == 3


def test_a_failed_review_says_what_could_not_be_read_and_keeps_its_transition_time() -> None:
    unknowns = ["clusterrolebindings could not be listed: forbidden to the operator (403)"]
    first = exposure.access_reviewed([], unknowns=unknowns, flagged=None, now="T1", generation=1)
    assert (first["status"], first["reason"]) == ("Unknown", "ReadFailed")
    assert "clusterrolebindings could not be listed" in first["message"]
    assert "last" in first["message"]  # the status keeps the last complete answer
    again = exposure.access_reviewed(
        [first], unknowns=unknowns, flagged=None, now="T2", generation=1
    )
    assert again["lastTransitionTime"] == "T1"
    healed = exposure.access_reviewed([again], unknowns=[], flagged=0, now="T3", generation=1)
    assert (healed["status"], healed["lastTransitionTime"]) == ("True", "T3")


def test_a_partly_read_review_is_false_and_the_message_is_bounded() -> None:
    unknowns = [f"ClusterRole r{i} could not be read to verify it: forbidden" for i in range(500)]
    condition = exposure.access_reviewed([], unknowns=unknowns, flagged=1, now="T", generation=None)
    assert (condition["status"], condition["reason"]) == ("False", "Incomplete")
    assert len(condition["message"]) <= 1024
    assert "r0" in condition["message"]

"""Entry points against the emulator with the real client, and the real operator's policy status.

The emulator has no authorizer: each test that needs SubjectAccessReviews answered stands one
in (:meth:`EmulatorThread.answer_access_reviews`), as the API server's would answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from minerguard.api.investigation import Severity
from minerguard.kube import client as kube_client
from minerguard_operator import exposure
from minerguard_operator.decide.exposure import ACCESS_CHECKS
from minerguard_operator.keeper import PolicyKeeper
from minerguard_operator.state import State
from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow

RBAC_GROUP = "rbac.authorization.k8s.io"
REVIEWS = "post /apis/authorization.k8s.io/v1/subjectaccessreviews"


@pytest.fixture
def api(kube: EmulatorThread) -> Iterator[kube_client.ApiClient]:
    made: Any = kube_client.api_client(kube.url)  # Any: the client's close() is untyped
    yield made
    made.close()


def exposed_scene(cluster: Cluster) -> dict[str, Any]:
    """A pod run by service account ``builder`` behind a LoadBalancer with an external address."""
    cluster.core.create_namespaced_service(
        "apps",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "shop"},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "web"},
                "ports": [{"port": 443, "protocol": "TCP", "nodePort": 31443}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}},
        },
    )
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "labels": {"app": "web"}},
        "spec": {
            "serviceAccountName": "builder",
            "containers": [{"name": "main", "image": "docker.io/example/app:1"}],
        },
    }
    return cluster.raw(cluster.core.create_namespaced_pod("apps", body))


def only_create_pods(spec: dict[str, Any]) -> bool:
    attributes = spec.get("resourceAttributes") or {}
    return (
        spec.get("user") == "system:serviceaccount:apps:builder"
        and "system:serviceaccounts:apps" in (spec.get("groups") or [])
        and attributes.get("namespace") == "apps"
        and (attributes.get("verb"), attributes.get("resource"), attributes.get("subresource"))
        == ("create", "pods", None)
    )


def test_an_exposed_service_and_an_account_that_may_create_pods_are_both_listed(
    kube: EmulatorThread, cluster: Cluster, api: kube_client.ApiClient
) -> None:
    pod = exposed_scene(cluster)
    kube.answer_access_reviews(only_create_pods)
    counted: list[int] = []
    found, unknowns = exposure.entry_points(api, pod, calls=lambda: counted.append(1))
    assert unknowns == []
    assert [(e.kind, e.name, e.severity) for e in found] == [
        ("Service", "apps/shop", Severity.HIGH),
        ("ServiceAccount", "apps/builder", Severity.HIGH),
    ]
    assert "203.0.113.9" in found[0].detail
    assert "create pods in namespace apps" in found[1].detail
    # services + ingresses + Gateway API discovery of v1 and v1alpha2 (+ the route kinds and
    # gateways where served) + one review each
    assert 3 + len(ACCESS_CHECKS) <= len(counted) <= 9 + len(ACCESS_CHECKS)


def install(kube: EmulatorThread, route: str, *response: Any) -> None:
    """Make the emulator answer ``route`` with ``response`` from now on (kmock's own rules)."""

    def apply() -> None:
        emu: Any = kube.emu
        filtered = emu[route]
        for part in response:
            filtered = filtered << part

    kube.loop.call_soon_threadsafe(apply)
    time.sleep(0.2)


def test_a_failing_access_review_endpoint_is_an_unknown_never_a_clean_bill(
    kube: EmulatorThread, cluster: Cluster, api: kube_client.ApiClient
) -> None:
    pod = exposed_scene(cluster)
    kube.answer_access_reviews(lambda spec: True)  # it would say yes, were it reachable
    install(kube, REVIEWS, 503)
    counted: list[int] = []
    found, unknowns = exposure.entry_points(api, pod, calls=lambda: counted.append(1))
    assert [e.kind for e in found] == ["Service"]
    assert len(unknowns) == 1
    said = unknowns[0]
    assert "apps/builder" in said
    assert "create pods" in said
    assert "create clusterrolebindings" in said
    assert "unavailable" in said
    assert len(counted) <= 9 + 1  # the listings, then one review: it stopped after it failed


def test_an_unanswered_review_is_an_unknown(
    kube: EmulatorThread, cluster: Cluster, api: kube_client.ApiClient
) -> None:
    pod = exposed_scene(cluster)  # no authorizer: reviews come back without a status
    found, unknowns = exposure.entry_points(api, pod)
    assert "ServiceAccount" not in [e.kind for e in found]
    assert any("could not tell" in u or "SubjectAccessReview failed" in u for u in unknowns)


def test_an_ingress_and_an_httproute_to_a_cluster_ip_service_are_listed(
    kube: EmulatorThread, cluster: Cluster, api: kube_client.ApiClient
) -> None:
    kube.answer_access_reviews(lambda spec: False)
    cluster.core.create_namespaced_service(
        "apps",
        {
            "metadata": {"name": "internal"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    rule = {
        "host": "shop.example.com",
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": "internal", "port": {"number": 80}}},
                }
            ]
        },
    }
    cluster.net.create_namespaced_ingress(
        "apps", {"metadata": {"name": "shop"}, "spec": {"rules": [rule]}}
    )
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge"},
        "spec": {
            "gatewayClassName": "public",
            "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}],
        },
    }
    cluster.custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "infra", "gateways", gateway
    )
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "shop"},
        "spec": {
            "parentRefs": [{"name": "edge", "namespace": "infra"}],
            "hostnames": ["api.example.com"],
            "rules": [{"backendRefs": [{"name": "internal", "namespace": "apps", "port": 80}]}],
        },
    }
    cluster.custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "frontend", "httproutes", route
    )
    pod = cluster.pod("web-1")
    found, unknowns = exposure.entry_points(api, pod)
    assert unknowns == []
    assert [(e.kind, e.name) for e in found] == [
        ("Ingress", "apps/shop"),
        ("HTTPRoute", "frontend/shop"),
    ]
    assert "infra/edge" in found[1].detail


def test_an_anonymous_cluster_role_binding_is_listed_in_the_policy_status(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "debug-anyone"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Group",
                "name": "system:unauthenticated",
            }
        ],
    }
    default = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:public-info-viewer"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:public-info-viewer",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Group",
                "name": "system:unauthenticated",
            }
        ],
    }
    rbac: Any = client.RbacAuthorizationV1Api(cluster.api)
    for body in (binding, default):
        rbac.create_cluster_role_binding(body)
    with running(kube.url):
        cluster.policy()
        policy = wait_for(
            lambda: (p := cluster.get_policy()).get("status", {}).get("anonymousAccess") and p,
            what="anonymousAccess in the policy status",
        )
    listed = policy["status"]["anonymousAccess"]
    assert [(e["kind"], e["name"], e["severity"]) for e in listed] == [
        ("AnonymousBinding", "debug-anyone", "High")
    ]
    assert listed[0]["remedy"] == "kubectl delete clusterrolebinding debug-anyone"


def test_anonymous_access_is_read_once_per_interval_not_once_per_policy_status(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    rbac: Any = client.RbacAuthorizationV1Api(cluster.api)

    def bind(name: str) -> None:
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": "system:anonymous"}],
            }
        )

    now = [1000.0]
    keeper = PolicyKeeper(
        lambda: kube_client.api_client(kube.url),
        State(clock=lambda: now[0]),
        lambda *_: None,
        anonymous_refresh_seconds=300,
    )
    bind("first")
    assert [e["name"] for e in keeper.anonymous_access() or []] == ["first"]
    bind("second")
    now[0] += 299  # every policy's status, every housekeeping round, uses the same reading
    assert [e["name"] for e in keeper.anonymous_access() or []] == ["first"]
    now[0] += 2
    assert [e["name"] for e in keeper.anonymous_access() or []] == ["first", "second"]


def route_crd(kind: str, plural: str, version: str = "v1alpha2") -> dict[str, Any]:
    """A Gateway API route CRD as its experimental channel installs it."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.gateway.networking.k8s.io"},
        "spec": {
            "group": "gateway.networking.k8s.io",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [{"name": version, "served": True, "storage": True}],
        },
    }


def test_grpc_tls_and_tcp_routes_are_listed_only_where_served(
    kube: EmulatorThread, cluster: Cluster, api: kube_client.ApiClient
) -> None:
    kube.answer_access_reviews(lambda spec: False)
    cluster.core.create_namespaced_service(
        "apps",
        {
            "metadata": {"name": "internal"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge"},
        "spec": {
            "gatewayClassName": "public",
            "listeners": [
                {"name": "grpc", "port": 443, "protocol": "HTTPS"},
                {"name": "tls", "port": 8443, "protocol": "TLS"},
                {"name": "tcp", "port": 9000, "protocol": "TCP"},
            ],
        },
    }
    cluster.custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "infra", "gateways", gateway
    )

    def make(version: str, plural: str, kind: str, section: str) -> None:
        spec: dict[str, Any] = {
            "parentRefs": [{"name": "edge", "namespace": "infra", "sectionName": section}],
            "rules": [{"backendRefs": [{"name": "internal", "namespace": "apps", "port": 80}]}],
        }
        if kind != "TCPRoute":
            spec["hostnames"] = [f"{section}.example.com"]
        body = {
            "apiVersion": f"gateway.networking.k8s.io/{version}",
            "kind": kind,
            "metadata": {"name": section},
            "spec": spec,
        }
        cluster.custom.create_namespaced_custom_object(
            "gateway.networking.k8s.io", version, "frontend", plural, body
        )

    make("v1", "grpcroutes", "GRPCRoute", "grpc")
    pod = cluster.pod("web-1")
    found, unknowns = exposure.entry_points(api, pod)  # v1alpha2 not served: not listed, not said
    assert unknowns == []
    assert [(e.kind, e.name) for e in found] == [("GRPCRoute", "frontend/grpc")]
    assert "grpc.example.com" in found[0].detail
    extensions: Any = client.ApiextensionsV1Api(cluster.api)
    for kind, plural in (("TLSRoute", "tlsroutes"), ("TCPRoute", "tcproutes")):
        extensions.create_custom_resource_definition(route_crd(kind, plural))
    make("v1alpha2", "tlsroutes", "TLSRoute", "tls")
    make("v1alpha2", "tcproutes", "TCPRoute", "tcp")
    counted: list[int] = []
    found, unknowns = exposure.entry_points(api, pod, calls=lambda: counted.append(1))
    assert unknowns == []
    assert [(e.kind, e.name, e.severity) for e in found] == [
        ("GRPCRoute", "frontend/grpc", Severity.HIGH),
        ("TLSRoute", "frontend/tls", Severity.HIGH),
        ("TCPRoute", "frontend/tcp", Severity.HIGH),
    ]
    assert "tls.example.com" in found[1].detail
    assert "TCP:9000" in found[2].detail
    assert "kubectl delete tcproute tcp -n frontend" in found[2].remedy
    # services, ingresses, 2 discoveries, 4 route kinds, gateways, one review each
    assert len(counted) == 9 + len(ACCESS_CHECKS)


def test_pod_creation_given_to_every_service_account_is_listed_in_the_policy_status(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    rbac: Any = client.RbacAuthorizationV1Api(cluster.api)
    rbac.create_cluster_role(
        {
            "metadata": {"name": "pod-runner"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]}],
        }
    )
    rbac.create_cluster_role(
        {
            "metadata": {"name": "system:basic-user"},
            "rules": [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                }
            ],
        }
    )
    for name, role, group in (
        ("every-pod-runs-pods", "pod-runner", "system:serviceaccounts"),
        ("system:basic-user", "system:basic-user", "system:authenticated"),  # the default
    ):
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group}],
            }
        )
    with running(kube.url):
        cluster.policy()
        policy = wait_for(
            lambda: (p := cluster.get_policy()).get("status", {}).get("anonymousAccess") and p,
            what="anonymousAccess in the policy status",
        )
    listed = policy["status"]["anonymousAccess"]
    assert [(e["kind"], e["name"], e["severity"]) for e in listed] == [
        ("BroadBinding", "every-pod-runs-pods", "High")
    ]
    assert "every pod in the cluster" in listed[0]["detail"]
    assert "create pods" in listed[0]["detail"]
    assert "kubectl delete clusterrolebinding every-pod-runs-pods" in listed[0]["remedy"]
    reviewed = [c for c in policy["status"]["conditions"] if c["type"] == "AccessReviewed"]
    assert [(c["status"], c["reason"]) for c in reviewed] == [("True", "Reviewed")]


def test_a_forbidden_rbac_read_is_said_in_the_policy_conditions(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    forbidden = {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403}
    for plural in ("clusterrolebindings", "rolebindings"):
        install(kube, f"get /apis/rbac.authorization.k8s.io/v1/{plural}", 403, forbidden)

    def reviewed() -> dict[str, Any] | None:
        conditions = cluster.get_policy().get("status", {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "AccessReviewed"), None)

    with running(kube.url):
        cluster.policy()
        condition = wait_for(reviewed, what="the AccessReviewed condition")
        policy = cluster.get_policy()
    assert (condition["status"], condition["reason"]) == ("Unknown", "ReadFailed")
    assert "clusterrolebindings could not be listed" in condition["message"]
    assert "forbidden" in condition["message"]
    assert "anonymousAccess" not in policy["status"] or policy["status"]["anonymousAccess"] == []
    ready = [c for c in policy["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"  # the policy itself is in force

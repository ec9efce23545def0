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
    # services + ingresses + Gateway API discovery (+ its lists where served) + one review each
    assert 3 + len(ACCESS_CHECKS) <= len(counted) <= 5 + len(ACCESS_CHECKS)


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
    assert len(counted) <= 6  # it stopped asking after the first failure


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

"""Attack: any pod in the cluster reaches port 8443 and posts made-up AdmissionReviews.

Two defences from the chart: the webhook's NetworkPolicy admits only the API server where the
CNI can express it (its CIDRs, or the kubeadm/kind static pods), and the webhook can require the
API server's TLS client certificate (values -> a mounted CA Secret -> MINERGUARD_WEBHOOK_CLIENT_CA
-> the TLS context; the handshake itself is tested in test_webhook_auth.py). Peers are matched
here with NetworkPolicy's own rules (ipBlock, namespaceSelector AND podSelector, empty `from`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import helm_python as helm
import pytest

from tests.integration.chart import chart
from tests.integration.chart.test_settings_env import chart_variables, problems
from webhook.settings import WebhookSettings

RESTRICTED = {"networkPolicy": {"webhookIngress": {"apiServerCIDRs": ["172.18.0.2/32"]}}}
CLIENT_AUTH = {"webhook": {"clientAuth": {"enabled": True, "caSecretName": "apiserver-client-ca"}}}


@dataclass(frozen=True)
class Source:
    """Where a connection comes from, as a NetworkPolicy implementation sees it."""

    ip: str
    namespace: dict[str, str] = field(default_factory=dict)
    pod: dict[str, str] | None = None  # None: not a pod (a node, the API server's host)


ATTACKER = Source("10.244.1.7", {"kubernetes.io/metadata.name": "payments"}, {"app": "web"})
API_SERVER = Source("172.18.0.2")
API_SERVER_POD = Source(
    "172.18.0.2",
    {"kubernetes.io/metadata.name": "kube-system"},
    {"component": "kube-apiserver", "tier": "control-plane"},
)


def _selects(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    if selector is None:
        return True
    if labels is None:
        return False
    wanted = selector.get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _peer_admits(peer: dict[str, Any], source: Source) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(source.ip)
        network = ipaddress.ip_network(block["cidr"])
        excepted = any(address in ipaddress.ip_network(e) for e in block.get("except") or ())
        return address.version == network.version and address in network and not excepted
    if "namespaceSelector" not in peer and "podSelector" not in peer:
        return False
    if source.pod is None:
        return False
    same_namespace = source.namespace.get("kubernetes.io/metadata.name") == "minerguard"
    namespace_ok = (
        _selects(peer["namespaceSelector"], source.namespace)
        if "namespaceSelector" in peer
        else same_namespace
    )
    return namespace_ok and _selects(peer.get("podSelector"), source.pod)


def reaches_webhook(values: dict[str, Any], source: Source, port: int = 8443) -> bool:
    """Whether the chart's webhook NetworkPolicy admits `source` on `port`."""
    policy = chart.render(values).one("NetworkPolicy", "-webhook")["spec"]
    assert "Ingress" in policy["policyTypes"]
    for rule in policy.get("ingress") or ():
        ports = [p["port"] for p in rule.get("ports") or ()]
        if ports and port not in ports:
            continue
        peers = rule.get("from")
        if not peers or any(_peer_admits(p, source) for p in peers):
            return True
    return False


def test_a_pod_cannot_reach_the_webhook_once_the_api_server_is_named() -> None:
    assert not reaches_webhook(RESTRICTED, ATTACKER)
    assert reaches_webhook(RESTRICTED, API_SERVER)
    assert not reaches_webhook(RESTRICTED, Source("172.18.0.3"))


def test_kubeadm_api_server_pods_can_be_named_instead_of_addresses() -> None:
    values = {"networkPolicy": {"webhookIngress": {"kubeadmApiServerPods": True}}}
    assert reaches_webhook(values, API_SERVER_POD)
    assert not reaches_webhook(values, ATTACKER)
    # A tenant cannot pass for the API server by labelling its own pod.
    impostor = Source(ATTACKER.ip, ATTACKER.namespace, {"component": "kube-apiserver"})
    assert not reaches_webhook(values, impostor)


def test_restricted_ingress_keeps_helm_test_and_the_metrics_peers() -> None:
    monitoring = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    values = {"networkPolicy": {**RESTRICTED["networkPolicy"], "metricsIngressPeers": [monitoring]}}
    prometheus = Source("10.244.2.9", {"name": "monitoring"}, {"app": "prometheus"})
    assert reaches_webhook(values, prometheus)
    helm_test = Source(
        "10.244.0.5",
        {"kubernetes.io/metadata.name": "minerguard"},
        {
            "app.kubernetes.io/name": "minerguard",
            "app.kubernetes.io/instance": chart.RELEASE,
            "app.kubernetes.io/component": "test",
        },
    )
    assert reaches_webhook(values, helm_test)


def test_by_default_any_pod_reaches_the_webhook_so_kind_keeps_working() -> None:
    # The documented trade-off: the API server's source address differs per cluster and CNI
    # (host network on kind and kubeadm, outside the cluster on managed ones); a wrong guess
    # with failurePolicy Fail refuses every pod. Client certificates close the gap instead.
    assert reaches_webhook({}, ATTACKER)
    assert reaches_webhook({}, API_SERVER)


def test_client_certificates_flow_from_values_to_the_webhook_settings() -> None:
    rendered = chart.render(CLIENT_AUTH)
    deployment = rendered.one("Deployment", "-webhook")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    path = env["MINERGUARD_WEBHOOK_CLIENT_CA"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == "apiserver-client-ca"
    assert [item["path"] for item in secret["items"]] == [path.rsplit("/", 1)[1]]
    assert problems(chart_variables(rendered)) == []
    settings = WebhookSettings.model_validate({"client_ca": path})
    assert settings.caller_authenticated
    # The kubelet has no client certificate: the probes check the port, and `helm test`
    # (which has none either) is left out.
    for probe in ("readinessProbe", "livenessProbe"):
        assert "tcpSocket" in container[probe]
        assert "httpGet" not in container[probe]
    assert not [m for m in rendered.hooks("test") if m.kind == "Pod"]


def test_without_client_certificates_callers_are_anonymous() -> None:
    rendered = chart.render()
    (container,) = rendered.one("Deployment", "-webhook")["spec"]["template"]["spec"]["containers"]
    assert not [e for e in container["env"] if e["name"] == "MINERGUARD_WEBHOOK_CLIENT_CA"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_client_certificates_need_the_ca_secret() -> None:
    with pytest.raises(helm.HelmError, match="caSecretName"):
        chart.render({"webhook": {"clientAuth": {"enabled": True}}})

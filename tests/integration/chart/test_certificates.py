"""The webhook's certificates: the serving certificate fits the Service, the bundle the CA."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration.chart import chart

_HELM_PROFILES = [p for p in chart.PROFILES if p != "cert-manager"]


def _pems(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def _secret(rendered: chart.Render, suffix: str) -> dict[str, bytes]:
    secret = rendered.one("Secret", suffix)
    assert secret["type"] == "kubernetes.io/tls"
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def _service_dns(rendered: chart.Render) -> str:
    service = rendered.one("Service", "-webhook")
    return f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"


@pytest.mark.parametrize("profile", _HELM_PROFILES)
def test_the_serving_certificate_names_the_webhook_service(profile: str) -> None:
    rendered = chart.render_profile(profile)
    (cert,) = _pems(_secret(rendered, "-webhook-tls")["tls.crt"])
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = sans.get_values_for_type(x509.DNSName)
    dns = _service_dns(rendered)
    assert dns in names
    assert f"{dns}.cluster.local" in names
    vwc = rendered.one("ValidatingWebhookConfiguration")
    for webhook in vwc["webhooks"]:
        service = webhook["clientConfig"]["service"]
        assert f"{service['name']}.{service['namespace']}.svc" == dns
        assert service["port"] == rendered.one("Service", "-webhook")["spec"]["ports"][0]["port"]


@pytest.mark.parametrize("profile", _HELM_PROFILES)
def test_the_ca_bundle_holds_the_ca_that_signed_the_serving_certificate(profile: str) -> None:
    rendered = chart.render_profile(profile)
    tls = _secret(rendered, "-webhook-tls")
    ca_secret = _secret(rendered, "-ca")
    (cert,) = _pems(tls["tls.crt"])
    (ca,) = _pems(ca_secret["tls.crt"])
    assert tls["ca.crt"] == ca_secret["tls.crt"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    cert.verify_directly_issued_by(ca)
    for webhook in rendered.one("ValidatingWebhookConfiguration")["webhooks"]:
        bundle = _pems(base64.b64decode(webhook["clientConfig"]["caBundle"]))
        assert bundle == [ca]  # a fresh install has no previous CA to keep


@pytest.mark.parametrize("suffix", ["-webhook-tls", "-ca"])
def test_each_key_belongs_to_its_certificate(suffix: str) -> None:
    secret = _secret(chart.render(), suffix)
    (cert,) = _pems(secret["tls.crt"])
    key = serialization.load_pem_private_key(secret["tls.key"], password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]


def test_lifetimes_follow_the_values_and_are_recorded_for_renewal() -> None:
    rendered = chart.render(
        {"certs": {"helm": {"certValidityDays": 30, "certRenewBeforeDays": 10}}}
    )
    now = datetime.datetime.now(datetime.UTC)
    (cert,) = _pems(_secret(rendered, "-webhook-tls")["tls.crt"])
    (ca,) = _pems(_secret(rendered, "-ca")["tls.crt"])
    assert abs(cert.not_valid_after_utc - now - datetime.timedelta(days=30)) < datetime.timedelta(
        hours=1
    )
    assert ca.not_valid_after_utc - now > datetime.timedelta(days=3600)
    for suffix, issued in (("-webhook-tls", cert), ("-ca", ca)):
        recorded = int(
            rendered.one("Secret", suffix)["metadata"]["annotations"]["minerguard.io/not-after"]
        )
        assert abs(recorded - issued.not_valid_after_utc.timestamp()) < 3600


def test_cert_manager_issues_the_certificate_and_injects_the_ca() -> None:
    rendered = chart.render_profile("cert-manager")
    assert rendered.of_kind("Secret") == []
    vwc = rendered.one("ValidatingWebhookConfiguration")
    certificate = rendered.one("Certificate", "-webhook-tls")
    namespace = certificate["metadata"]["namespace"]
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{namespace}/{certificate['metadata']['name']}"
    )
    for webhook in vwc["webhooks"]:
        assert "caBundle" not in webhook["clientConfig"]
    assert _service_dns(rendered) in certificate["spec"]["dnsNames"]
    deployment = rendered.one("Deployment", "-webhook")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]
    # The chain: a self-signed issuer makes the CA, a CA issuer signs the serving certificate.
    ca_certificate = rendered.one("Certificate", "-ca")
    assert ca_certificate["spec"]["isCA"] is True
    ca_issuer = rendered.one("Issuer", "-ca")
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_certificate["spec"]["secretName"]
    assert certificate["spec"]["issuerRef"] == {
        "kind": "Issuer",
        "name": ca_issuer["metadata"]["name"],
    }


def test_cert_manager_can_use_an_existing_issuer() -> None:
    issuer = {"kind": "ClusterIssuer", "name": "corp-ca"}
    rendered = chart.render(
        {"certs": {"mode": "cert-manager", "certManager": {"issuerRef": issuer}}}
    )
    assert rendered.of_kind("Issuer") == []
    assert rendered.one("Certificate")["spec"]["issuerRef"] == issuer


def test_the_webhook_mounts_the_whole_secret_so_renewals_reach_it() -> None:
    pod = chart.render().one("Deployment", "-webhook")["spec"]["template"]["spec"]
    for mount in pod["containers"][0]["volumeMounts"]:
        assert "subPath" not in mount
    args = pod["containers"][0]["args"]
    assert "--tls-cert=/etc/minerguard/tls/tls.crt" in args
    assert "--tls-key=/etc/minerguard/tls/tls.key" in args

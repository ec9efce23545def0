"""The real server over TLS: verified clients, certificate rotation without restart, workers."""

from __future__ import annotations

import ssl
import time

import httpx
import pytest

from tests.integration.webhook import certs
from tests.integration.webhook.conftest import PKI, ServerFactory
from tests.integration.webhook.reviews import container, pod, review
from tests.support import wait_for

pytestmark = pytest.mark.slow
FAST_RELOAD = {"MINERGUARD_WEBHOOK_TLS_RELOAD_SECONDS": "0.2"}
MINER = pod(container("alpine", command=["xmrig", "-o", "stratum+tcp://pool.supportxmr.com:3333"]))


def handshake(url: str, context: ssl.SSLContext) -> int:
    """A fresh connection (a new TLS handshake) verifying the server against ``context``."""
    with httpx.Client(verify=context, timeout=5) as client:
        return client.get(f"{url}/healthz").status_code


def serves(url: str, context: ssl.SSLContext) -> bool:
    """Whether a fresh handshake verifying against ``context`` succeeds (and /healthz answers)."""
    try:
        return handshake(url, context) == 200
    except httpx.ConnectError:
        return False


def test_a_client_that_verifies_the_certificate_gets_decisions(serve: ServerFactory) -> None:
    server = serve()
    answer = server.review(review(MINER))
    assert answer["allowed"] is False
    assert server.client.get("/healthz").text == "ok"
    assert server.client.get("/readyz").text == "ok"
    assert "minerguard_webhook_reviews_total" in server.client.get("/metrics").text


def test_a_client_trusting_another_ca_is_refused(serve: ServerFactory, pki: PKI) -> None:
    server = serve()
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        handshake(server.url, pki.client_context(certs.authority("someone else")))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=3)


def test_a_rotated_certificate_is_served_without_a_restart(serve: ServerFactory, pki: PKI) -> None:
    server = serve(env=FAST_RELOAD)
    assert handshake(server.url, pki.client_context()) == 200
    pid = server.process.pid
    rotated = certs.authority("rotated CA")
    certs.serving(rotated, pki.cert, pki.key)
    wait_for(lambda: serves(server.url, pki.client_context(rotated)), what="the new certificate")
    with pytest.raises(httpx.ConnectError):
        handshake(server.url, pki.client_context())
    assert server.process.pid == pid
    assert server.process.poll() is None
    reloads = [
        line
        for line in httpx.get(
            f"{server.url}/metrics", verify=pki.client_context(rotated)
        ).text.splitlines()
        if line.startswith("minerguard_webhook_tls_reloads_total")
    ]
    assert reloads == ["minerguard_webhook_tls_reloads_total 1.0"]


def test_a_half_written_certificate_keeps_the_old_one_serving(
    serve: ServerFactory, pki: PKI
) -> None:
    server = serve(env=FAST_RELOAD)
    pki.cert.write_text("-----BEGIN CERTIFICATE-----\ntruncated")
    time.sleep(0.8)
    assert handshake(server.url, pki.client_context()) == 200
    rotated = certs.authority("rotated CA")
    certs.serving(rotated, pki.cert, pki.key)
    wait_for(lambda: serves(server.url, pki.client_context(rotated)), what="the new certificate")


def test_several_workers_serve_and_each_reloads_the_certificate(
    serve: ServerFactory, pki: PKI
) -> None:
    server = serve("--workers", "2", env=FAST_RELOAD)
    for _ in range(10):
        with httpx.Client(verify=pki.client_context(), base_url=server.url) as client:
            answer = client.post("/validate", json=review(MINER))
            assert answer.json()["response"]["allowed"] is False
    rotated = certs.authority("rotated CA")
    certs.serving(rotated, pki.cert, pki.key)
    time.sleep(1.0)
    for _ in range(20):  # fresh connections land on both workers
        assert handshake(server.url, pki.client_context(rotated)) == 200

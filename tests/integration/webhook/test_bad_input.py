"""Bad and hostile input over real TLS: a reason or a well-formed review, never a 500 or a hang."""

from __future__ import annotations

import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from tests.integration.webhook.conftest import PKI, POOL, Server, ServerFactory
from tests.integration.webhook.reviews import container, pod, review

pytestmark = pytest.mark.slow


@pytest.fixture
def server(serve: ServerFactory) -> Server:
    return serve()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"<xml/>", "not JSON"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}', "v1beta1"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": 7}',
            "request",
        ),
    ],
)
def test_malformed_reviews_get_400_with_a_reason(server: Server, raw: bytes, reason: str) -> None:
    answer = server.post(raw)
    assert answer.status_code == 400
    assert reason in answer.json()["error"]


def test_unknown_kinds_are_allowed(server: Server) -> None:
    answer = server.review(review({"kind": "Gadget"}, kind="Gadget", resource="gadgets"))
    assert answer["allowed"] is True


def test_a_three_megabyte_pod_with_thousands_of_env_vars_is_decided(server: Server) -> None:
    env = [{"name": f"VAR_{i}", "value": "v" * 250} for i in range(12_000)]
    big = pod(container("alpine", command=["xmrig", "-o", POOL], env=env))
    raw = orjson.dumps(review(big))
    assert len(raw) > 3_000_000
    started = time.monotonic()
    answer = server.post(raw)
    assert answer.status_code == 200
    assert answer.json()["response"]["allowed"] is False
    assert time.monotonic() - started < 5


def test_thousands_of_containers_are_decided(server: Server) -> None:
    many = pod(
        *[container("busybox", name=f"c{i}", command=["sleep", str(i)]) for i in range(1800)]
    )
    assert server.review(review(many))["allowed"] is True


def test_a_stalled_client_does_not_hold_up_others(server: Server, pki: PKI) -> None:
    context = pki.client_context()
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        stalled = context.wrap_socket(raw, server_hostname="127.0.0.1")
        stalled.sendall(
            b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{"
        )
        started = time.monotonic()
        answer = server.review(review(pod(container("nginx:1.27", command=["nginx"]))))
        assert answer["allowed"] is True
        assert time.monotonic() - started < 2
        stalled.close()


def test_fifty_concurrent_reviews_are_all_answered(server: Server, pki: PKI) -> None:
    miner = pod(container("alpine", command=["xmrig", "-o", POOL]))

    def one(_: int) -> bool:

        with httpx.Client(verify=pki.client_context(), base_url=server.url) as client:
            return bool(client.post("/validate", json=review(miner)).json()["response"]["allowed"])

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(50)))
    assert results == [False] * 50


def test_a_plain_http_request_to_the_tls_port_is_not_served(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        try:
            reply = raw.recv(100)
        except (ConnectionResetError, ssl.SSLError):
            reply = b""
    assert not reply.startswith(b"HTTP/1.1 200")

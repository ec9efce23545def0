"""Attack: any pod that reaches port 8443 posts a made-up AdmissionReview blaming anyone.

`/validate` used to accept reviews from every caller, and the audit trail wrote the review's
`userInfo` as fact: a forged review naming `alice@corp.example` in `payments` produced a
MinerDetection and an Event blaming her. Now the webhook can require the API server's TLS client
certificate (`--client-ca`, the chart's `webhook.clientAuth`), and in every case the audit trail
says whether the requester was vouched for or only claimed. These run the real webhook process
over TLS on loopback with real certificates.
"""

from __future__ import annotations

import datetime
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.webhook import certs, reviews
from tests.integration.webhook.conftest import PKI, Server
from tests.support import policy, wait_for
from tests.unit.webhook.helpers import Sink, reviewer
from webhook.review import AdmissionRequest

pytestmark = pytest.mark.slow

MINER = reviews.pod(
    reviews.container("alpine", command=["xmrig", "-o", "stratum+tcp://pool.supportxmr.com:3333"])
)
FORGED = reviews.review(MINER, namespace="payments", user="alice@corp.example", groups=("finance",))


def client_certificate(ca: certs.Authority, folder: Path, name: str) -> tuple[Path, Path]:
    """A client certificate (clientAuth) for `name`, signed by `ca`: (cert, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class Callers:
    """TLS contexts for the three kinds of caller (each verifies the server's certificate)."""

    api_server: ssl.SSLContext
    stranger: ssl.SSLContext
    anonymous: ssl.SSLContext


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return PKI.issue(tmp_path)


@pytest.fixture
def client_ca(pki: PKI) -> certs.Authority:
    """The CA that signs the API server's client certificate (kubeadm: the cluster CA)."""
    return certs.authority("kubernetes client CA")


@pytest.fixture
def callers(pki: PKI, client_ca: certs.Authority) -> Callers:
    def with_certificate(ca: certs.Authority, name: str) -> ssl.SSLContext:
        context = pki.client_context()
        context.load_cert_chain(*client_certificate(ca, pki.folder, name))
        return context

    return Callers(
        api_server=with_certificate(client_ca, "kube-apiserver-webhook-client"),
        stranger=with_certificate(certs.authority("attacker CA"), "kube-apiserver"),
        anonymous=pki.client_context(),
    )


@pytest.fixture
def servers(pki: PKI) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start(
    servers: list[Server],
    pki: PKI,
    context: ssl.SSLContext,
    *args: str,
    env: dict[str, str] | None = None,
) -> Server:
    """A real `python -m webhook` process, waited for with a client using `context`."""
    server = Server(pki, args, env or {})
    servers.append(server)
    server.client.close()
    server.client = httpx.Client(base_url=server.url, verify=context, timeout=20)
    return server.wait_ready()


def posts(server: Server, context: ssl.SSLContext, body: dict[str, Any]) -> httpx.Response:
    """POST a review on a fresh connection (a fresh handshake) made with `context`."""
    with httpx.Client(base_url=server.url, verify=context, timeout=5) as client:
        return client.post("/validate", json=body)


def logged_detections(server: Server) -> list[dict[str, Any]]:
    """The detections a webhook without a cluster writes to its log, parsed."""
    found = []
    for line in server.log.read_text().splitlines():
        _, marker, text = line.partition(" detection ")
        if marker and text.startswith("{"):
            found.append(json.loads(text))
    return found


def test_a_caller_without_the_api_servers_certificate_cannot_post_reviews(
    servers: list[Server], pki: PKI, client_ca: certs.Authority, callers: Callers
) -> None:
    ca_file = client_ca.write(pki.folder / "client-ca.crt")
    server = start(servers, pki, callers.api_server, "--client-ca", str(ca_file))
    for refused in (callers.anonymous, callers.stranger):
        with pytest.raises(httpx.TransportError):
            posts(server, refused, FORGED)
    assert logged_detections(server) == []
    answer = posts(server, callers.api_server, FORGED)
    assert answer.status_code == 200
    assert answer.json()["response"]["allowed"] is False
    wait_for(lambda: logged_detections(server), what="the detection in the log")
    (detection,) = logged_detections(server)
    assert detection["spec"]["requestingUser"] == "alice@corp.example"
    assert detection["spec"]["requesterAuthenticated"] is True


def test_a_renewed_client_ca_is_trusted_without_a_restart(
    servers: list[Server], pki: PKI, client_ca: certs.Authority, callers: Callers
) -> None:
    ca_file = client_ca.write(pki.folder / "client-ca.crt")
    fast = {"MINERGUARD_WEBHOOK_TLS_RELOAD_SECONDS": "0.2"}
    server = start(servers, pki, callers.api_server, "--client-ca", str(ca_file), env=fast)
    renewed = certs.authority("kubernetes client CA, renewed")
    context = pki.client_context()
    context.load_cert_chain(*client_certificate(renewed, pki.folder, "kube-apiserver-renewed"))
    with pytest.raises(httpx.TransportError):
        posts(server, context, FORGED)
    tmp = ca_file.with_suffix(".tmp")  # the kubelet's atomic swap: old and new CA side by side
    tmp.write_bytes(client_ca.pem + renewed.pem)
    tmp.replace(ca_file)

    def admitted() -> bool:
        try:
            return posts(server, context, FORGED).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(admitted, what="the renewed client CA to be trusted")
    assert posts(server, callers.api_server, FORGED).status_code == 200
    with pytest.raises(httpx.TransportError):
        posts(server, callers.stranger, FORGED)


def test_a_forged_review_cannot_blame_a_user(
    servers: list[Server], pki: PKI, callers: Callers
) -> None:
    # No client CA (clusters whose API server presents no certificate): the review still gets
    # its answer, but the record says the requester is only what the review claimed.
    server = start(servers, pki, callers.anonymous)
    answer = posts(server, callers.anonymous, FORGED)
    assert answer.json()["response"]["allowed"] is False
    wait_for(lambda: logged_detections(server), what="the detection in the log")
    (detection,) = logged_detections(server)
    assert detection["metadata"]["namespace"] == "payments"
    assert detection["spec"]["requestingUser"] == "alice@corp.example"
    assert detection["spec"]["requesterAuthenticated"] is False


@pytest.mark.parametrize(
    ("client_ca", "vouched"), [(None, False), (Path("/etc/minerguard/client-ca/ca.crt"), True)]
)
async def test_the_event_says_whether_the_requester_was_vouched_for(
    client_ca: Path | None, vouched: bool
) -> None:
    # The claim is the server's to make (was a client certificate required?), never the review's.
    sink = Sink()
    forged = AdmissionRequest.model_validate(FORGED["request"])
    await reviewer([policy()], sink=sink, client_ca=client_ca).review(forged)
    ((detection, event),) = sink.items
    assert detection is not None
    assert event is not None
    assert detection.spec.requester_authenticated is vouched
    claimed = "alice@corp.example as claimed by the AdmissionReview (caller not authenticated)"
    assert (claimed in event.message) is not vouched
    assert "refused for alice@corp.example" in event.message

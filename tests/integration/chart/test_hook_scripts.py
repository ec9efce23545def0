"""The chart's hook scripts, run as the hook pods run them, against HTTPS servers on loopback.

remove_webhook.py (pre-delete) talks to a stand-in API server; smoke_test.py (`helm test`) to a
stand-in webhook. Both verify the server's certificate against a CA file, as in the cluster.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import http.server
import ipaddress
import json
import os
import pathlib
import ssl
import subprocess
import sys
import threading
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.chart import chart

_SCRIPTS = chart.CHART / "files" / "scripts"


@dataclasses.dataclass
class Server:
    """A loopback HTTPS server answering with `respond(method, path, body)`."""

    port: int
    ca_file: pathlib.Path
    seen: list[tuple[str, str, dict[str, str], bytes]]


Responder = collections.abc.Callable[[str, str, bytes], tuple[int, Any]]


def _certificate(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def serve(
    tmp_path: pathlib.Path,
) -> collections.abc.Iterator[collections.abc.Callable[[Responder], Server]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(respond: Responder) -> Server:
        cert_file, key_file = _certificate(tmp_path)
        seen: list[tuple[str, str, dict[str, str], bytes]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen.append((self.command, self.path, dict(self.headers), body))
                status, payload = respond(self.command, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return Server(server.server_address[1], cert_file, seen)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(_SCRIPTS / script)],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _api_env(server: Server, tmp_path: pathlib.Path) -> dict[str, str]:
    account = tmp_path / "serviceaccount"
    account.mkdir(exist_ok=True)
    (account / "token").write_text("hook-token\n")
    (account / "ca.crt").write_bytes(server.ca_file.read_bytes())
    return {
        "WEBHOOK_CONFIGURATION": "mg-minerguard",
        "SERVICEACCOUNT_DIR": str(account),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(server.port),
    }


def test_the_pre_delete_hook_deletes_the_webhook_configuration(
    serve: collections.abc.Callable[[Responder], Server], tmp_path: pathlib.Path
) -> None:
    server = serve(lambda method, path, body: (200, {"kind": "Status", "status": "Success"}))
    result = _run("remove_webhook.py", _api_env(server, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    ((method, path, headers, _),) = server.seen
    assert method == "DELETE"
    assert (
        path
        == "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/mg-minerguard"
    )
    assert headers["Authorization"] == "Bearer hook-token"


def test_the_pre_delete_hook_succeeds_when_the_configuration_is_already_gone(
    serve: collections.abc.Callable[[Responder], Server], tmp_path: pathlib.Path
) -> None:
    server = serve(lambda method, path, body: (404, {"kind": "Status", "code": 404}))
    result = _run("remove_webhook.py", _api_env(server, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already gone" in result.stdout


def test_the_pre_delete_hook_fails_when_it_may_not_delete(
    serve: collections.abc.Callable[[Responder], Server], tmp_path: pathlib.Path
) -> None:
    server = serve(lambda method, path, body: (403, {"kind": "Status", "code": 403}))
    result = _run("remove_webhook.py", _api_env(server, tmp_path))
    assert result.returncode == 1
    assert "HTTP 403" in result.stdout


def _webhook(deny_miners: bool, warn: bool = False) -> Responder:
    def respond(method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "GET":
            return (200, {"status": "ready"}) if path == "/readyz" else (404, {})
        request = json.loads(body)["request"]
        miner = "xmrig" in json.dumps(request["object"])
        verdict: dict[str, Any] = {"uid": request["uid"], "allowed": not (miner and deny_miners)}
        if miner and deny_miners:
            verdict["status"] = {
                "code": 403,
                "message": "container miner runs xmrig (policy default)",
            }
        if miner and warn:
            verdict["warnings"] = ["container miner runs xmrig (policy default, Audit)"]
        return 200, {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": verdict,
        }

    return respond


def _webhook_env(server: Server, expect: str) -> dict[str, str]:
    return {
        "WEBHOOK_URL": f"https://127.0.0.1:{server.port}",
        "CA_FILE": str(server.ca_file),
        "EXPECT": expect,
    }


@pytest.mark.parametrize(
    ("deny", "warn", "expect", "passes"),
    [
        (True, False, "deny", True),
        (False, False, "deny", False),
        (False, True, "warn", True),
        (False, False, "warn", False),
        (False, False, "any", True),
    ],
)
def test_helm_test_passes_only_on_the_expected_verdicts(
    serve: collections.abc.Callable[[Responder], Server],
    deny: bool,
    warn: bool,
    expect: str,
    passes: bool,
) -> None:
    server = serve(_webhook(deny, warn))
    result = _run("smoke_test.py", _webhook_env(server, expect))
    assert (result.returncode == 0) == passes, result.stdout + result.stderr
    posted = [json.loads(body) for method, _, _, body in server.seen if method == "POST"]
    assert len(posted) == 2
    assert all(review["request"]["dryRun"] is True for review in posted)


def test_helm_test_refuses_a_webhook_whose_certificate_it_cannot_verify(
    serve: collections.abc.Callable[[Responder], Server], tmp_path: pathlib.Path
) -> None:
    server = serve(_webhook(True))
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _ = _certificate(other)
    result = _run("smoke_test.py", {**_webhook_env(server, "deny"), "CA_FILE": str(other_ca)})
    assert result.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert server.seen == []


def test_the_pre_delete_hook_deletes_the_pinning_configuration_first(
    serve: collections.abc.Callable[[Responder], Server], tmp_path: pathlib.Path
) -> None:
    server = serve(lambda method, path, body: (200, {"kind": "Status", "status": "Success"}))
    env = {**_api_env(server, tmp_path), "MUTATING_WEBHOOK_CONFIGURATION": "mg-minerguard-pin"}
    result = _run("remove_webhook.py", env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(method, path) for method, path, _, _ in server.seen] == [
        (
            "DELETE",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/mg-minerguard-pin",
        ),
        (
            "DELETE",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/mg-minerguard",
        ),
    ]

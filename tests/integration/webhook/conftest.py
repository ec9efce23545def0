"""Real webhook servers over TLS on loopback, and real registries holding pushed images."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.webhook import certs, oci
from tests.support import policy_document, wait_for

ROOT = Path(__file__).resolve().parents[3]
WALLET = "4" + "A" * 94
POOL = "stratum+tcp://pool.supportxmr.com:3333"


@dataclass(frozen=True)
class PKI:
    ca: certs.Authority
    cert: Path
    key: Path
    folder: Path

    @classmethod
    def issue(cls, folder: Path) -> PKI:
        """A fresh CA and a serving certificate for loopback, written into ``folder``."""
        ca = certs.authority()
        cert, key = folder / "tls.crt", folder / "tls.key"
        certs.serving(ca, cert, key)
        return cls(ca, cert, key, folder)

    def client_context(self, ca: certs.Authority | None = None) -> ssl.SSLContext:
        """A context that verifies the server against ``ca`` (default: the serving CA)."""
        return ssl.create_default_context(cadata=(ca or self.ca).pem.decode())


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return PKI.issue(tmp_path)


@dataclass(frozen=True)
class Images:
    """What the tests pushed, as pods would name it."""

    open: str  # HOST:PORT of the anonymous registry
    token: str  # HOST:PORT of the same storage behind token auth
    hanging: str  # HOST:PORT that never answers
    tokens: oci.TokenServer
    digests: Mapping[str, str]

    def ref(self, name: str, host: str | None = None) -> str:
        return f"{host or self.open}/{name}"


def _push(registry: str) -> dict[str, str]:
    digests: dict[str, str] = {}
    entry = ["/usr/bin/xmrig", "-o", POOL, "-u", WALLET]
    amd = oci.push_image(registry, "miners/xmrig", entrypoint=entry)
    arm = oci.push_image(registry, "miners/xmrig", entrypoint=entry, arch="arm64")
    digests["miners/xmrig:6.21"] = oci.push_index(
        registry, "miners/xmrig", "6.21", {"amd64": amd, "arm64": arm}
    )
    digests["miners/cmdonly:1"], _ = oci.push_image(
        registry, "miners/cmdonly", tag="1", cmd=["xmrig", "--url=" + POOL, "--donate-level=1"]
    )
    digests["miners/envminer:1"], _ = oci.push_image(
        registry,
        "miners/envminer",
        tag="1",
        entrypoint=["/start.sh"],
        env=["PATH=/usr/bin:/bin", f"POOL_URL={POOL}", f"WALLET={WALLET}"],
    )
    digests["benign/web:1"], _ = oci.push_image(
        registry,
        "benign/web",
        tag="1",
        entrypoint=["/docker-entrypoint.sh"],
        cmd=["nginx", "-g", "daemon off;"],
        docker=True,
    )
    good = oci.push_image(registry, "mixed/app", entrypoint=["/app"], cmd=["--serve"])
    bad = oci.push_image(registry, "mixed/app", entrypoint=["/app", "-o", POOL], arch="arm64")
    digests["mixed/app:1"] = oci.push_index(
        registry, "mixed/app", "1", {"amd64": good, "arm64": bad}, docker=True
    )
    digests["private/app:1"], _ = oci.push_image(
        registry, "private/app", tag="1", cmd=["xmrig", "-o", POOL]
    )
    # As buildx pushes it: the image, plus an attestation manifest no node pulls (its config
    # here would be a miner's, so judging it would show).
    web = oci.push_image(registry, "attested/app", entrypoint=["/app"], cmd=["--serve"])
    attestation = oci.push_image(registry, "attested/app", entrypoint=["/app", "-o", POOL])
    digests["attested/app:1"] = _push_raw_index(
        registry,
        "attested/app:1",
        [(web, {"os": "linux", "architecture": "amd64"}), (attestation, UNKNOWN_PLATFORM)],
    )
    # More linux entries than the webhook judges; the one past the limit runs a miner.
    benign = oci.push_image(registry, "wide/app", entrypoint=["/app"])
    past = oci.push_image(registry, "wide/app", entrypoint=["/app", "-o", POOL])
    entries = [(benign, {"os": "linux", "architecture": f"arch{i}"}) for i in range(16)]
    entries.append((past, {"os": "linux", "architecture": "arch16"}))
    digests["wide/app:1"] = _push_raw_index(registry, "wide/app:1", entries)
    return digests


UNKNOWN_PLATFORM = {"os": "unknown", "architecture": "unknown"}


def _push_raw_index(
    registry: str, name: str, entries: Sequence[tuple[tuple[str, int], Mapping[str, str]]]
) -> str:
    """An OCI index with exactly these (manifest, platform) entries, which push_index cannot
    express (it declares every entry linux)."""
    repository, _, tag = name.partition(":")
    document = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_INDEX,
        "manifests": [
            {
                "mediaType": oci.OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": dict(platform),
            }
            for (digest, size), platform in entries
        ],
    }
    digest, _ = oci.push_manifest(registry, repository, tag, document, oci.OCI_INDEX)
    return digest


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    if not Path(oci.BINARY).exists():
        pytest.skip("docker-registry is not installed (apt-get install -y docker-registry)")
    folder = tmp_path_factory.mktemp("registries")
    storage = folder / "storage"
    storage.mkdir()
    with (
        oci.TokenServer(folder, {"puller": "pull-secret-pw"}) as tokens,
        oci.Registry(storage, folder) as open_registry,
        oci.Registry(storage, folder, tokens) as token_registry,
        oci.HangingServer() as hanging,
    ):
        digests = _push(open_registry.url)
        yield Images(open_registry.host, token_registry.host, hanging.host, tokens, digests)


def policy_file(folder: Path, name: str, **spec: Any) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(policy_document(name, **spec)))
    return path


class Server:
    """A ``python -m webhook`` process and a client that verifies its certificate."""

    def __init__(self, pki: PKI, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.port = oci.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.pki = pki
        self.log = pki.folder / f"webhook-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "webhook",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--tls-cert",
            str(pki.cert),
            "--tls-key",
            str(pki.key),
            *args,
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.client = httpx.Client(base_url=self.url, verify=pki.client_context(), timeout=20)

    def wait_ready(self, timeout: float = 30) -> Server:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"webhook exited: {self.log.read_text()[-3000:]}")
            try:
                return self.client.get("/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(ready, timeout, what="the webhook to be ready")
        except AssertionError as err:
            raise RuntimeError(f"{err}: {self.log.read_text()[-3000:]}") from err
        return self

    def post(self, review: Mapping[str, Any] | bytes) -> httpx.Response:
        if isinstance(review, bytes):
            return self.client.post("/validate", content=review)
        return self.client.post("/validate", json=review)

    def review(self, review: Mapping[str, Any]) -> dict[str, Any]:
        answer = self.post(review)
        assert answer.status_code == 200, answer.text
        response: dict[str, Any] = answer.json()["response"]
        assert response["uid"] == review["request"]["uid"]
        return response

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


ServerFactory = Callable[..., Server]


@pytest.fixture
def serve(pki: PKI) -> Iterator[ServerFactory]:
    """Start webhook servers with extra flags and environment; all stopped afterwards."""
    started: list[Server] = []

    def start(*args: str, env: Mapping[str, str] | None = None, wait: bool = True) -> Server:
        server = Server(pki, args, env or {})
        started.append(server)
        return server.wait_ready() if wait else server

    yield start
    for server in started:
        server.stop()

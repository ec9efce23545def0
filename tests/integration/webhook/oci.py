"""Real registries on loopback for the webhook's tests and benchmarks.

- :class:`Registry`: Debian's ``docker-registry`` (distribution 2.8) on a free port with a
  temporary storage folder, optionally with token auth against :class:`TokenServer`.
- :func:`push_image` / :func:`push_index`: a standard-library pusher (blobs, OCI manifests,
  OCI indexes) speaking the distribution API's upload protocol.
- :class:`TokenServer`: the distribution token protocol (``GET /token?service&scope`` with
  optional Basic credentials → an ES256 JWT carrying its certificate in ``x5c``), trusted by
  the registry through ``rootcertbundle``.
- :class:`HangingServer`: accepts connections and never answers (deadline tests).
- :class:`HostileServer`, :func:`serve_image`, :func:`serve_index`: a scripted registry that
  lies, challenges, redirects and records every request (tests/security).
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.support import wait_for

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
LOOPBACK_ENV = {"MINERGUARD_WEBHOOK_REGISTRY_ALLOWED_NETWORKS": '["127.0.0.0/8"]'}
"""What a webhook needs to reach these loopback servers: the address policy denies loopback."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _http(
    method: str, url: str, data: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, data, dict(headers or {}), method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


class TokenServer:
    """Issues registry bearer tokens; ``private/`` repositories need Basic credentials."""

    def __init__(self, folder: Path, users: Mapping[str, str]) -> None:
        self.users = dict(users)
        self.service = "minerguard-test-registry"
        self.issuer = "minerguard-test-issuer"
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token signer")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = folder / "token-root.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_GET(self) -> None:
                status, body = outer.answer(self.path, self.headers.get("Authorization"))
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.realm = f"http://{self.host}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _user(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else None

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        query = parse_qs(urlparse(path).query)
        scope = (query.get("scope") or [""])[0]
        user = self._user(authorization)
        self.requests.append((scope, user))
        if authorization and user is None:
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
        access = []
        if scope.startswith("repository:"):
            _, repository, _ = scope.split(":", 2)
            if not repository.startswith("private/") or user is not None:
                access.append({"type": "repository", "name": repository, "actions": ["pull"]})
        return 200, {"token": self.token(user or "", access), "expires_in": 300}

    def token(self, subject: str, access: list[dict[str, Any]]) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"alg": "ES256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def __enter__(self) -> TokenServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Registry:
    """``docker-registry serve`` on 127.0.0.1, stopped (and its storage kept) on exit."""

    def __init__(self, storage: Path, folder: Path, token: TokenServer | None = None) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        auth = ""
        if token is not None:
            auth = (
                "auth:\n  token:\n"
                f"    realm: {token.realm}\n    service: {token.service}\n"
                f"    issuer: {token.issuer}\n    rootcertbundle: {token.bundle}\n"
            )
        self.config = folder / f"registry-{self.port}.yml"
        self.config.write_text(
            "version: 0.1\nlog:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n{auth}"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Registry:
        self.process = subprocess.Popen(
            [BINARY, "serve", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                status, _, _ = _http("GET", f"{self.url}/v2/")
            except OSError:
                return False
            return status in (200, 401)  # 401: the token-protected one asks for a token

        try:
            wait_for(answers, 10, what="docker-registry to start")
        except AssertionError:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class HangingServer:
    """Accepts TCP connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.host = f"127.0.0.1:{self.port}"
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def __enter__(self) -> HangingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(2)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


# -- pushing ------------------------------------------------------------------------------


def push_blob(registry: str, repository: str, blob: bytes) -> str:
    status, headers, _ = _http("POST", f"{registry}/v2/{repository}/blobs/uploads/")
    assert status == 202, status
    location = headers["Location"]
    location = location if location.startswith("http") else registry + location
    joiner = "&" if "?" in location else "?"
    status, _, _ = _http(
        "PUT",
        f"{location}{joiner}digest={sha(blob)}",
        blob,
        {"Content-Type": "application/octet-stream"},
    )
    assert status == 201, status
    return sha(blob)


def push_manifest(
    registry: str, repository: str, reference: str, document: Mapping[str, Any], media_type: str
) -> tuple[str, int]:
    raw = json.dumps(document, separators=(",", ":")).encode()
    status, _, body = _http(
        "PUT",
        f"{registry}/v2/{repository}/manifests/{reference}",
        raw,
        {"Content-Type": media_type},
    )
    assert status == 201, (status, body[:300])
    return sha(raw), len(raw)


def _add_layer_entries(
    archive: tarfile.TarFile, files: Mapping[str, tuple[bytes, int]], links: Mapping[str, str]
) -> None:
    """Directories first (parents of every entry, once, sorted), then files, then symlinks."""
    names = [name.strip("/") for name in (*files, *links)]
    directories = sorted(
        {
            "/".join(name.split("/")[:depth])
            for name in names
            for depth in range(1, name.count("/") + 1)
        }
    )
    for directory in directories:
        info = tarfile.TarInfo(directory)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
    for name, (data, mode) in files.items():
        info = tarfile.TarInfo(name.strip("/"))
        info.size, info.mode = len(data), mode
        archive.addfile(info, io.BytesIO(data))
    for name, target in links.items():
        info = tarfile.TarInfo(name.strip("/"))
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        archive.addfile(info)


def push_image(
    registry: str,
    repository: str,
    *,
    tag: str | None = None,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    env: Sequence[str] = (),
    arch: str = "amd64",
    docker: bool = False,
    files: Mapping[str, tuple[bytes, int]] | None = None,
    links: Mapping[str, str] | None = None,
    more_layers: Sequence[Mapping[str, tuple[bytes, int]]] = (),
    history: Sequence[Any] | None = None,
    labels: Mapping[str, str] | None = None,
    created: str | None = None,
) -> tuple[str, int]:
    """Push a one-layer image; returns (manifest digest, manifest size).

    The layer holds a tiny ``/usr/bin/app`` script unless ``files`` (path in the layer →
    content and mode) or ``links`` (path → symlink target) are given: then it holds exactly
    those, with their parent directories, e.g. a runnable busybox image. ``more_layers`` are
    stacked on top (files each); ``history``, ``labels`` and ``created`` go into the config as
    a builder writes them (the history is not checked against the layers: tests lie with it).
    """
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        if files is None and links is None:
            data = b"#!/bin/sh\necho hello\n"
            info = tarfile.TarInfo("usr/bin/app")
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
        else:
            _add_layer_entries(archive, files or {}, links or {})
    tars = [tar.getvalue()]
    for extra in more_layers:
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as archive:
            _add_layer_entries(archive, extra, {})
        tars.append(tar.getvalue())
    config: dict[str, Any] = {"Env": list(env)}
    if entrypoint is not None:
        config["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        config["Cmd"] = list(cmd)
    if labels is not None:
        config["Labels"] = dict(labels)
    document: dict[str, Any] = {
        "architecture": arch,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]},
    }
    if created is not None:
        document["created"] = created
    if history is not None:
        document["history"] = list(history)
    blob = json.dumps(document).encode()
    gzipped = [gzip.compress(t, mtime=0) for t in tars]
    media = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media,
        "config": {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "digest": push_blob(registry, repository, blob),
            "size": len(blob),
        },
        "layers": [
            {
                "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                "digest": push_blob(registry, repository, layer),
                "size": len(layer),
            }
            for layer in gzipped
        ],
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    return push_manifest(registry, repository, tag or sha(raw), manifest, media)


def push_index(
    registry: str,
    repository: str,
    tag: str,
    platforms: Mapping[str, tuple[str, int]],
    *,
    docker: bool = False,
) -> str:
    """Push an index over per-architecture manifests; returns the index digest."""
    media = DOCKER_LIST if docker else OCI_INDEX
    entry_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    document = {
        "schemaVersion": 2,
        "mediaType": media,
        "manifests": [
            {
                "mediaType": entry_type,
                "digest": digest,
                "size": size,
                "platform": {"architecture": arch, "os": "linux"},
            }
            for arch, (digest, size) in platforms.items()
        ],
    }
    digest, _ = push_manifest(registry, repository, tag, document, media)
    return digest


# -- hostile registries -------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request a :class:`HostileServer` received."""

    method: str
    path: str
    headers: Mapping[str, str]

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


Reply = tuple[int, Mapping[str, str], bytes]
Route = Callable[[Seen], Reply]


class HostileServer:
    """An HTTP server on a loopback address that answers whatever the test scripted.

    A registry (or token realm, or blob store) that lies, redirects, challenges or stalls the
    way an attacker's would; every request is recorded (``seen``), so a test can show that
    something was never asked, or asked without credentials. ``host`` may be any 127.0.0.0/8
    address (Linux routes the whole range to ``lo``), to stand for a second machine.
    """

    def __init__(self, address: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {"/v2/": lambda _: (200, {}, b"{}")}
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _answer(self, head: bool) -> None:
                seen = Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                )
                outer.seen.append(seen)
                route = outer.routes.get(urlparse(self.path).path)
                status, headers, body = route(seen) if route else (404, {}, b"{}")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(head=False)

            def do_HEAD(self) -> None:
                self._answer(head=True)

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.host = f"{address}:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(
        self, path: str, body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer ``path`` with this, always."""
        fixed = (status, dict(headers or {}), body)
        self.routes[path] = lambda _: fixed

    def paths(self) -> list[str]:
        return [urlparse(s.path).path for s in self.seen]

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_image(
    server: HostileServer,
    repository: str,
    config: Mapping[str, Any],
    *,
    tag: str | None = None,
    arch: str = "amd64",
) -> tuple[str, int]:
    """Publish an image (config blob + manifest) on a hostile server; (digest, size)."""
    blob = json.dumps({"architecture": arch, "os": "linux", "config": dict(config)}).encode()
    server.answer(f"/v2/{repository}/blobs/{sha(blob)}", blob)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(blob), "size": len(blob)},
        "layers": [],
    }
    raw = json.dumps(manifest).encode()
    headers = {"Content-Type": OCI_MANIFEST}
    for reference in (sha(raw), *([tag] if tag else [])):
        server.answer(f"/v2/{repository}/manifests/{reference}", raw, headers=headers)
    return sha(raw), len(raw)


def serve_index(
    server: HostileServer,
    repository: str,
    tag: str,
    entries: Sequence[tuple[tuple[str, int], Mapping[str, str] | None]],
) -> str:
    """Publish an OCI index of (manifest, platform or None for none declared) entries."""
    manifests = []
    for (digest, size), platform in entries:
        entry: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}
        if platform is not None:
            entry["platform"] = dict(platform)
        manifests.append(entry)
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
    body = raw.encode()
    for reference in (sha(body), tag):
        server.answer(
            f"/v2/{repository}/manifests/{reference}", body, headers={"Content-Type": OCI_INDEX}
        )
    return sha(body)

"""Attack: registry look-ups as a weapon (SSRF, credential theft, port scanning).

An image reference names any host, and a registry names its token realm and blob redirects:
all attacker-chosen. The webhook used to connect to loopback, link-local (cloud metadata) and
private addresses, send pull-secret credentials to an ``http://`` realm on any host, follow a
blob redirect anywhere, and return upstream detail ("connection refused", "answered 500")
that let a pod map what the webhook can reach. Scripted registries on 127.0.0.0/8 stand for
the internal hosts; a second loopback address (127.0.0.2) for a machine the policy denies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpcore
import pytest

from minerguard.oci import auth, egress, registry
from tests.integration.webhook import certs, oci
from tests.integration.webhook.conftest import PKI, POOL, Server, policy_file
from tests.integration.webhook.reviews import container, pod, review
from webhook import resolve

pytestmark = pytest.mark.slow
CREDS = auth.Credentials("puller", "pull-secret-pw")
ONLY_127_0_0_1 = egress.AddressPolicy.of(["127.0.0.1/32"])


@pytest.fixture
def hostile() -> Iterator[oci.HostileServer]:
    with oci.HostileServer() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[oci.HostileServer]:
    """A server on 127.0.0.2: another machine, one the tests' policy does not allow."""
    with oci.HostileServer("127.0.0.2") as server:
        yield server


def strict_server(folder: Path, *args: str, env: Mapping[str, str] | None = None) -> Server:
    ca = certs.authority()
    cert, key = folder / "tls.crt", folder / "tls.key"
    certs.serving(ca, cert, key)
    policies = policy_file(folder, "strict", actions={"onRegistryFailure": "Deny"})
    argv = ["--policy-file", str(policies), "--registry-timeout", "1", *args]
    return Server(PKI(ca, cert, key, folder), argv, env or {}).wait_ready()


async def resolve_one(
    client: registry.RegistryClient, image: str, creds: Mapping[str, auth.Credentials]
) -> resolve.Resolution:
    async def keychain() -> Mapping[str, auth.Credentials]:
        return creds

    resolver = resolve.ImageResolver(client)
    try:
        return await resolver.resolve_all([image], None, deadline=3, keychain=keychain)
    finally:
        await client.aclose()


def test_a_registry_on_loopback_is_not_contacted_by_default(
    hostile: oci.HostileServer, tmp_path: Path
) -> None:
    oci.serve_image(hostile, "app", {"Entrypoint": ["/app"]}, tag="1")
    server = strict_server(tmp_path, "--insecure-registry", hostile.host)  # no allowed networks
    try:
        for host in (hostile.host, f"localhost:{hostile.port}"):
            answer = server.review(review(pod(container(f"{host}/app:1"))))
            assert answer["allowed"] is False
            assert "not verified (the registry could not be reached)" in answer["status"]["message"]
        assert hostile.seen == []
    finally:
        server.stop()


def test_metadata_and_internal_addresses_are_refused_before_any_connection() -> None:
    policy = egress.AddressPolicy.of(["169.254.0.0/16"])  # even with link-local allowed
    for metadata in ("169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"):
        assert not policy.allows(ipaddress.ip_address(metadata))
    default = egress.AddressPolicy()
    for internal in ("127.0.0.1", "10.96.0.1", "192.168.1.1", "100.64.0.1", "fe80::1", "::1"):
        assert not default.allows(ipaddress.ip_address(internal)), internal
    for wrapped in ("::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1"):  # mapped, NAT64, 6to4
        assert not default.allows(ipaddress.ip_address(wrapped)), wrapped
    assert not default.allows(ipaddress.ip_address("192.0.2.1"))  # documentation range
    assert default.allows(ipaddress.ip_address("8.8.8.8"))

    class Refuse(httpcore.AsyncNetworkBackend):
        async def connect_tcp(self, *args: object, **kwargs: object) -> httpcore.AsyncNetworkStream:
            raise AssertionError("connected")

    guarded = egress.GuardedBackend(policy, Refuse())
    with pytest.raises(egress.AddressNotAllowed):
        asyncio.run(guarded.connect_tcp("169.254.169.254", 80))


async def test_credentials_are_not_sent_to_a_plain_http_realm(
    hostile: oci.HostileServer, elsewhere: oci.HostileServer
) -> None:
    hostile.answer(
        "/v2/app/manifests/1",
        b"{}",
        401,
        {"WWW-Authenticate": f'Bearer realm="http://{elsewhere.host}/token",service="x"'},
    )
    client = registry.RegistryClient(
        insecure=[hostile.host], policy=egress.AddressPolicy(egress.LOOPBACK)
    )
    result = await resolve_one(client, f"{hostile.host}/app:1", {hostile.host: CREDS})
    assert result.errors[f"{hostile.host}/app:1"] == "the registry refused access"
    assert elsewhere.seen == []


async def test_a_token_realm_on_a_denied_address_is_not_asked(
    hostile: oci.HostileServer, elsewhere: oci.HostileServer
) -> None:
    hostile.answer(
        "/v2/app/manifests/1",
        b"{}",
        401,
        {"WWW-Authenticate": f'Bearer realm="http://{elsewhere.host}/token",service="x"'},
    )
    # The realm is even configured insecure: the address policy still says no.
    client = registry.RegistryClient(insecure=[hostile.host, elsewhere.host], policy=ONLY_127_0_0_1)
    result = await resolve_one(client, f"{hostile.host}/app:1", {hostile.host: CREDS})
    assert result.errors[f"{hostile.host}/app:1"] == "the registry could not be reached"
    assert elsewhere.seen == []


def _redirect_blobs(hostile: oci.HostileServer, target: str) -> str:
    """Serve an image whose config blob is redirected to ``target``; returns the blob path."""
    oci.serve_image(hostile, "app", {"Entrypoint": ["/app"]}, tag="1")
    blob = next(p for p in hostile.routes if "/blobs/" in p)
    hostile.answer(blob, b"", 307, {"Location": f"{target}{blob}"})
    return blob


async def test_a_blob_redirect_to_a_denied_address_is_not_followed(
    hostile: oci.HostileServer, elsewhere: oci.HostileServer
) -> None:
    _redirect_blobs(hostile, elsewhere.url)
    client = registry.RegistryClient(insecure=[hostile.host, elsewhere.host], policy=ONLY_127_0_0_1)
    result = await resolve_one(client, f"{hostile.host}/app:1", {})
    assert result.errors[f"{hostile.host}/app:1"] == "the registry could not be reached"
    assert elsewhere.seen == []


async def test_a_blob_redirect_carries_no_credentials_and_is_followed_once(
    hostile: oci.HostileServer, elsewhere: oci.HostileServer
) -> None:
    blob = _redirect_blobs(hostile, elsewhere.url)
    authorized = hostile.routes["/v2/app/manifests/1"]

    def basic(seen: oci.Seen) -> oci.Reply:
        if seen.authorization != CREDS.basic():
            return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b"{}"
        return authorized(seen)

    hostile.routes["/v2/app/manifests/1"] = basic
    elsewhere.answer(blob, b"", 302, {"Location": f"{elsewhere.url}{blob}"})  # a loop
    client = registry.RegistryClient(
        insecure=[hostile.host, elsewhere.host], policy=egress.AddressPolicy(egress.LOOPBACK)
    )
    result = await resolve_one(client, f"{hostile.host}/app:1", {hostile.host: CREDS})
    assert result.errors  # the loop ends at the second redirect
    assert [s.authorization for s in elsewhere.seen] == [None]
    assert any(s.authorization == CREDS.basic() for s in hostile.seen)


class _Garbage:
    """Accepts connections and answers bytes that are not HTTP (an open non-HTTP port)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def test_review_errors_do_not_tell_a_port_scanner_what_answered(
    hostile: oci.HostileServer, tmp_path: Path
) -> None:
    hostile.answer("/v2/app/manifests/1", b"internal db 10.0.0.5 is down", 500)
    garbage = _Garbage()
    closed = f"127.0.0.1:{oci.free_port()}"
    hosts = [hostile.host, garbage.host, closed]
    insecure = [arg for host in hosts for arg in ("--insecure-registry", host)]
    server = strict_server(tmp_path, *insecure, env=oci.LOOPBACK_ENV)
    try:
        reasons = set()
        for host in hosts:
            message = server.review(review(pod(container(f"{host}/app:1"))))["status"]["message"]
            reasons.add(message.replace(host, "HOST"))
        assert len(reasons) == 1, reasons
        (reason,) = reasons
        assert "the registry could not be reached" in reason
        for leak in ("500", "10.0.0.5", "refused", "Errno", "SSH", "unreachable"):
            assert leak not in reason
        log = server.log.read_text()
        assert "answered 500" in log  # the detail is for the operator
    finally:
        garbage.sock.close()
        server.stop()


def test_a_miner_image_is_still_read_through_an_allowed_network(
    hostile: oci.HostileServer, tmp_path: Path
) -> None:
    oci.serve_image(hostile, "app", {"Entrypoint": ["/app", "-o", POOL]}, tag="1")
    server = strict_server(tmp_path, "--insecure-registry", hostile.host, env=oci.LOOPBACK_ENV)
    try:
        answer = server.review(review(pod(container(f"{hostile.host}/app:1"))))
        assert answer["allowed"] is False
        assert "pool-url" in answer["status"]["message"]
    finally:
        server.stop()


async def test_an_https_registry_is_verified_by_its_name_though_reached_by_checked_address(
    tmp_path: Path,
) -> None:
    ca = certs.authority()
    cert, key = tmp_path / "registry.crt", tmp_path / "registry.key"
    certs.serving(ca, cert, key)  # names localhost and 127.0.0.1
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    trust = ssl.create_default_context(cadata=ca.pem.decode())
    with oci.HostileServer(tls=serving) as tls:
        oci.serve_image(tls, "app", {"Entrypoint": ["/app", "-o", POOL]}, tag="1")
        image = f"localhost:{tls.port}/app:1"
        client = registry.RegistryClient(verify=trust, policy=egress.AddressPolicy(egress.LOOPBACK))
        result = await resolve_one(client, image, {})
        assert POOL in result.configs[image].entrypoint, result.errors
        untrusted = registry.RegistryClient(policy=egress.AddressPolicy(egress.LOOPBACK))
        refused = await resolve_one(untrusted, image, {})
        assert refused.errors[image] == "the registry could not be reached"

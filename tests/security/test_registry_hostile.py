"""Attack: a registry that answers to exhaust or fool the webhook.

Whoever writes an image reference picks the registry, so its answers are hostile input: a
manifest of gigabytes, an index of a hundred thousand entries or of indexes nested without
end, a body dripped a byte at a time, redirects in a loop (tests/security/test_registry_ssrf),
content that does not match its digest. Each is bounded (size caps, one deadline per image, a
cap on manifests judged, one redirect hop) and ends as a failure the policy decides on; these
show the bounds hold against a scripted registry on loopback.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping

import pytest

from minerguard.oci import auth, egress, registry
from tests.integration.webhook import oci
from webhook import resolve

pytestmark = pytest.mark.slow


@pytest.fixture
def hostile() -> Iterator[oci.HostileServer]:
    with oci.HostileServer() as server:
        yield server


async def resolve_one(
    host: str, image: str, deadline: float = 3
) -> tuple[resolve.Resolution, registry.RegistryClient]:
    client = registry.RegistryClient(insecure=[host], policy=egress.AddressPolicy(egress.LOOPBACK))

    async def keychain() -> Mapping[str, auth.Credentials]:
        return {}

    try:
        resolver = resolve.ImageResolver(client)
        return await resolver.resolve_all(
            [image], None, deadline=deadline, keychain=keychain
        ), client
    finally:
        await client.aclose()


async def test_a_manifest_over_the_cap_is_refused_unread(hostile: oci.HostileServer) -> None:
    hostile.answer("/v2/app/manifests/1", b" " * (registry.MAX_MANIFEST_BYTES + 1))
    result, _ = await resolve_one(hostile.host, f"{hostile.host}/app:1")
    assert result.errors[f"{hostile.host}/app:1"] == "the registry's answer is not a usable image"


async def test_content_that_does_not_match_its_digest_is_refused(
    hostile: oci.HostileServer,
) -> None:
    oci.serve_image(hostile, "app", {"Entrypoint": ["/app"]}, tag="1")
    blob = next(p for p in hostile.routes if "/blobs/" in p)
    hostile.answer(blob, json.dumps({"config": {"Entrypoint": ["/other"]}}).encode())
    result, _ = await resolve_one(hostile.host, f"{hostile.host}/app:1")
    assert result.errors[f"{hostile.host}/app:1"] == "the registry's answer is not a usable image"
    digest, _ = oci.serve_image(hostile, "pinned", {"Entrypoint": ["/app"]})
    hostile.answer(f"/v2/pinned/manifests/{digest}", b'{"config": {}}')  # other bytes
    pinned, _ = await resolve_one(hostile.host, f"{hostile.host}/pinned@{digest}")
    assert pinned.errors[f"{hostile.host}/pinned@{digest}"] == (
        "the registry's answer is not a usable image"
    )


async def test_an_index_of_a_hundred_thousand_entries_costs_at_most_the_cap(
    hostile: oci.HostileServer,
) -> None:
    entries = [
        ((f"sha256:{i:064x}", 1), {"os": "linux", "architecture": f"a{i}"}) for i in range(100_000)
    ]
    oci.serve_index(hostile, "wide", "1", entries)
    started = time.monotonic()
    result, client = await resolve_one(hostile.host, f"{hostile.host}/wide:1")
    assert time.monotonic() - started < 3.5
    assert result.errors  # the entries do not exist: not found, never admitted
    assert client.requests <= 1 + registry.MAX_PLATFORMS


async def test_an_index_nested_in_an_index_ends_at_the_second_level(
    hostile: oci.HostileServer,
) -> None:
    inner = oci.serve_index(hostile, "nest", "inner", [])
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_INDEX,
            "manifests": [
                {
                    "mediaType": oci.OCI_INDEX,
                    "digest": inner,
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        }
    ).encode()
    hostile.answer("/v2/nest/manifests/1", raw, headers={"Content-Type": oci.OCI_INDEX})
    result, client = await resolve_one(hostile.host, f"{hostile.host}/nest:1")
    assert result.errors[f"{hostile.host}/nest:1"] == "the registry's answer is not a usable image"
    assert client.requests == 2


class _Drip:
    """Answers 200 with a body of one byte every 0.2 s, forever (a read timeout never fires)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not self.stop.wait(0.2):
                try:
                    conn.sendall(b" ")
                except OSError:
                    return


async def test_a_body_dripped_forever_is_cut_at_the_deadline() -> None:
    drip = _Drip()
    try:
        started = time.monotonic()
        result, _ = await resolve_one(drip.host, f"{drip.host}/app:1", deadline=1)
        assert time.monotonic() - started < 1.5
        assert result.errors[f"{drip.host}/app:1"] == "registry did not answer within 1s"
    finally:
        drip.stop.set()
        drip.sock.close()

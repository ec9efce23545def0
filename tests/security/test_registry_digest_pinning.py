"""Attack: the image judged is not the image that runs, because a tag is only a pointer.

The webhook judged ``app:1`` and the pod was admitted naming ``app:1``; the kubelet then pulled
whatever the tag pointed to when the pod was scheduled. Whoever controls the registry (or just
pushes to the repository) re-points the tag to a miner after the review, or answers the
webhook and the kubelet differently. Without pinning there was no ``/mutate`` at all, and the
pod kept the bare tag.

With ``webhook.pinDigests``, ``/mutate`` rewrites the reference to ``app:1@sha256:<judged>``,
which the runtime pulls by digest and verifies, and ``/validate`` judges exactly that digest.
Served by Debian's ``docker-registry`` (or a scripted hostile registry) on loopback to the
real webhook process; the API server's order (mutating webhooks, then validating ones) is
played by the test. What a node then pulls is shown with a private containerd (``ctr content
fetch``): a registry answering containerd differently from the webhook (it tells them apart by
User-Agent) hands the node the miner for the bare tag, and cannot for the pinned digest.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from tests.conftest import require
from tests.integration.webhook import certs, oci
from tests.integration.webhook.conftest import PKI, POOL, Server, policy_file
from tests.integration.webhook.reviews import container, pod, review
from tests.support import wait_for

pytestmark = pytest.mark.slow
MINER = ["/usr/bin/xmrig", "-o", POOL]
BENIGN = ["/app", "--serve"]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[oci.Registry]:
    """A real registry the test can push to (and re-point tags in) while the webhook reads it."""
    require(Path(oci.BINARY).exists(), "docker-registry is not installed")
    storage = tmp_path / "storage"
    storage.mkdir()
    with oci.Registry(storage, tmp_path) as server:
        yield server


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[str], Server]]:
    """Starts the real webhook, enforcing, refusing what it cannot verify, reading a registry."""
    ca = certs.authority()
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    certs.serving(ca, cert, key)
    strict = policy_file(tmp_path, "strict", actions={"onRegistryFailure": "Deny"})
    started: list[Server] = []

    def run(host: str) -> Server:
        args = ["--policy-file", str(strict), "--insecure-registry", host]
        server = Server(PKI(ca, cert, key, tmp_path), args, oci.LOOPBACK_ENV)
        started.append(server)
        return server.wait_ready()

    yield run
    for server in started:
        server.stop()


@pytest.fixture
def webhook(registry: oci.Registry, start: Callable[[str], Server]) -> Server:
    """The webhook reading ``registry``."""
    return start(registry.host)


def mutate(server: Server, document: dict[str, Any]) -> dict[str, Any]:
    """POST ``document`` to ``/mutate`` as the API server does; the response part."""
    answer = server.client.post("/mutate", json=document)
    assert answer.status_code == 200, f"/mutate answered {answer.status_code}: {answer.text}"
    response: dict[str, Any] = answer.json()["response"]
    assert response["uid"] == document["request"]["uid"]
    assert response["allowed"] is True  # pinning never refuses
    return response


def tagged(registry: oci.Registry, repository: str, tag: str) -> str:
    """The digest ``repository:tag`` points to in ``registry`` now (what a bare tag pulls)."""
    url = f"{registry.url}/v2/{repository}/manifests/{tag}"
    request = urllib.request.Request(url, headers={"Accept": oci.OCI_MANIFEST})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
        return oci.sha(answer.read())


def admitted(server: Server, obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server stores: ``obj`` with ``/mutate``'s patch applied."""
    response = mutate(server, review(obj))
    if "patch" not in response:
        return obj
    assert response["patchType"] == "JSONPatch"
    operations = json.loads(base64.b64decode(response["patch"]))
    patched: dict[str, Any] = jsonpatch.apply_patch(obj, operations)
    return patched


def test_a_tag_repointed_after_the_review_cannot_reach_the_pod(
    registry: oci.Registry, webhook: Server
) -> None:
    benign, _ = oci.push_image(registry.url, "team/app", tag="1", entrypoint=BENIGN)
    stored = admitted(webhook, pod(container(f"{registry.host}/team/app:1")))
    verdict = webhook.review(review(stored))
    # The attacker re-points the tag once the pod is in.
    miner, _ = oci.push_image(registry.url, "team/app", tag="1", entrypoint=MINER)
    assert tagged(registry, "team/app", "1") == miner  # a bare tag would now pull the miner
    image = stored["spec"]["containers"][0]["image"]
    assert image == f"{registry.host}/team/app:1@{benign}"  # the kubelet pulls what was judged
    assert verdict["allowed"] is True
    # Admitting the same pod again (a new review after the push) judges it the same: pinned.
    assert webhook.review(review(stored))["allowed"] is True


def test_a_pod_pinned_to_the_miners_digest_is_judged_on_that_digest(
    registry: oci.Registry, webhook: Server
) -> None:
    oci.push_image(registry.url, "team/app", tag="1", entrypoint=BENIGN)
    miner, _ = oci.push_image(registry.url, "team/app", entrypoint=MINER)
    warm = admitted(webhook, pod(container(f"{registry.host}/team/app:1")))
    assert webhook.review(review(warm))["allowed"] is True  # the tag's answer is cached now
    # The same tag, re-pinned by hand to the miner: judged by digest, not by the cached tag.
    forged = pod(container(f"{registry.host}/team/app:1@{miner}"))
    assert admitted(webhook, forged) == forged  # an image already pinned is left as written
    answer = webhook.review(review(forged))
    assert answer["allowed"] is False
    assert "xmrig" in answer["status"]["message"] or "pool" in answer["status"]["message"]


def test_a_multi_arch_image_is_pinned_to_the_index_that_was_judged(
    registry: oci.Registry, webhook: Server
) -> None:
    amd = oci.push_image(registry.url, "team/multi", entrypoint=BENIGN)
    arm = oci.push_image(registry.url, "team/multi", entrypoint=BENIGN, arch="arm64")
    index = oci.push_index(registry.url, "team/multi", "2", {"amd64": amd, "arm64": arm})
    stored = admitted(
        webhook,
        pod(
            container(f"{registry.host}/team/multi:2"),
            initContainers=[container(f"{registry.host}/team/multi:2", name="init")],
        ),
    )
    pinned = f"{registry.host}/team/multi:2@{index}"
    assert stored["spec"]["containers"][0]["image"] == pinned
    assert stored["spec"]["initContainers"][0]["image"] == pinned
    assert webhook.review(review(stored))["allowed"] is True


def test_an_image_the_webhook_cannot_resolve_is_left_unpinned_and_judged_unverified(
    registry: oci.Registry, webhook: Server
) -> None:
    missing = pod(container(f"{registry.host}/team/absent:1"))
    response = mutate(webhook, review(missing))
    assert "patch" not in response
    assert any("not pinned" in w for w in response.get("warnings", []))
    assert webhook.review(review(missing))["allowed"] is False  # onRegistryFailure: Deny


def test_a_registry_cannot_choose_the_digest_a_pod_is_pinned_to(
    start: Callable[[str], Server],
) -> None:
    # The registry names the miner's digest in Docker-Content-Digest while serving the benign
    # manifest: the pin is the digest of the bytes judged, not of what the registry claims.
    with oci.HostileServer() as hostile:
        miner, _ = oci.serve_image(hostile, "team/app", {"Entrypoint": MINER})
        benign, _ = oci.serve_image(hostile, "team/app", {"Entrypoint": BENIGN})
        served = hostile.routes[f"/v2/team/app/manifests/{benign}"](oci.Seen("GET", "", {}))
        hostile.answer(
            "/v2/team/app/manifests/1",
            served[2],
            headers={"Content-Type": oci.OCI_MANIFEST, "Docker-Content-Digest": miner},
        )
        webhook = start(hostile.host)
        stored = admitted(webhook, pod(container(f"{hostile.host}/team/app:1")))
        assert stored["spec"]["containers"][0]["image"] == f"{hostile.host}/team/app:1@{benign}"
        assert webhook.review(review(stored))["allowed"] is True


def test_judging_a_pinned_pod_reads_the_registry_no_more_than_pinning_did(
    start: Callable[[str], Server],
) -> None:
    # One lookup serves both webhooks: /validate of the pinned pod reads the cache /mutate
    # filled (keyed by the digest), so pinning adds no registry round trip to a review.
    with oci.HostileServer() as hostile:
        benign, _ = oci.serve_image(hostile, "team/app", {"Entrypoint": BENIGN}, tag="1")
        webhook = start(hostile.host)
        before = len(hostile.paths())
        stored = admitted(webhook, pod(container(f"{hostile.host}/team/app:1")))
        pinned = len(hostile.paths())
        assert webhook.review(review(stored))["allowed"] is True
        pinning = [p for p in hostile.paths()[before:pinned] if p != "/v2/"]
        judging = hostile.paths()[pinned:]
        assert stored["spec"]["containers"][0]["image"].endswith(f"@{benign}")
        assert pinning == ["/v2/team/app/manifests/1", pinning[1]]  # manifest, then config
        assert pinning[1].startswith("/v2/team/app/blobs/sha256:")
        assert judging == []


class Runtime:
    """A private containerd (CRI off, its own root and socket) fetching images as a node does.

    ``ctr content fetch`` resolves and downloads a reference exactly as a pull does (manifest
    by tag or digest, digest-verified, then the config), without unpacking or running it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "containerd.sock"
        config = folder / "config.toml"
        config.write_text(
            f'version = 2\nroot = "{folder / "root"}"\nstate = "{folder / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{folder / "containerd.sock.ttrpc"}"\n'
            f'[debug]\n  address = "{folder / "debug.sock"}"\n[metrics]\n  address = ""\n'
        )
        with (folder / "containerd.log").open("wb") as log:
            self.process = subprocess.Popen(
                [str(shutil.which("containerd")), "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self.socket.exists, 15, what="containerd's socket", interval=0.02)

    def fetch(self, reference: str) -> subprocess.CompletedProcess[str]:
        """What a node pulling ``reference`` gets (over plain HTTP from loopback)."""
        return subprocess.run(
            ["ctr", "-a", str(self.socket), "content", "fetch", "--plain-http", reference],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def stored(self) -> str:
        """The digests in containerd's content store."""
        listed = subprocess.run(
            ["ctr", "-a", str(self.socket), "content", "ls", "-q"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return listed.stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    require(os.geteuid() == 0, "containerd needs root")
    for tool in ("containerd", "ctr"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    folder = tmp_path / "containerd"
    folder.mkdir()
    started = Runtime(folder)
    try:
        yield started
    finally:
        started.stop()


def two_faced(
    hostile: oci.HostileServer, path: str, webhook: bytes, node: bytes, media: str
) -> None:
    """Answer ``path`` with ``webhook`` to the webhook's User-Agent, ``node`` to anyone else."""

    def route(seen: oci.Seen) -> oci.Reply:
        agent = seen.headers.get("user-agent", "")
        body = webhook if agent.startswith("minerguard-webhook") else node
        return 200, {"Content-Type": media}, body

    hostile.routes[path] = route


def manifest(hostile: oci.HostileServer, repository: str, digest: str) -> bytes:
    """The bytes ``serve_image`` published for ``digest``."""
    return hostile.routes[f"/v2/{repository}/manifests/{digest}"](oci.Seen("GET", "", {}))[2]


@pytest.mark.root
def test_a_registry_that_shows_the_node_another_image_cannot_reach_a_pinned_pod(
    start: Callable[[str], Server], runtime: Runtime
) -> None:
    with oci.HostileServer() as hostile:
        benign, _ = oci.serve_image(hostile, "team/app", {"Entrypoint": BENIGN})
        miner, _ = oci.serve_image(hostile, "team/app", {"Entrypoint": MINER})
        benign_bytes, miner_bytes = (manifest(hostile, "team/app", d) for d in (benign, miner))
        # The tag: benign to the webhook, the miner to containerd.
        two_faced(hostile, "/v2/team/app/manifests/1", benign_bytes, miner_bytes, oci.OCI_MANIFEST)
        bare = f"{hostile.host}/team/app:1"
        webhook = start(hostile.host)
        stored = admitted(webhook, pod(container(bare)))
        assert webhook.review(review(stored))["allowed"] is True
        image = stored["spec"]["containers"][0]["image"]
        assert image == f"{bare}@{benign}"
        # Unpinned, the node would have fetched the miner for the tag the webhook judged benign.
        assert runtime.fetch(bare).returncode == 0
        assert miner.removeprefix("sha256:") in runtime.stored()
        # Pinned, it fetches what was judged.
        fetched = runtime.fetch(image)
        assert fetched.returncode == 0, fetched.stderr
        assert benign.removeprefix("sha256:") in runtime.stored()


@pytest.mark.root
def test_a_registry_cannot_serve_the_node_other_bytes_for_a_pinned_digest(
    start: Callable[[str], Server], runtime: Runtime
) -> None:
    with oci.HostileServer() as hostile:
        benign, _ = oci.serve_image(hostile, "team/app", {"Entrypoint": BENIGN}, tag="1")
        miner, _ = oci.serve_image(hostile, "team/app", {"Entrypoint": MINER})
        benign_bytes, miner_bytes = (manifest(hostile, "team/app", d) for d in (benign, miner))
        webhook = start(hostile.host)
        stored = admitted(webhook, pod(container(f"{hostile.host}/team/app:1")))
        image = stored["spec"]["containers"][0]["image"]
        assert image.endswith(f"@{benign}")
        # Now the digest's path serves the miner's manifest to the node: the runtime checks it.
        path = f"/v2/team/app/manifests/{benign}"
        two_faced(hostile, path, benign_bytes, miner_bytes, oci.OCI_MANIFEST)
        fetched = runtime.fetch(image)
        assert fetched.returncode != 0, fetched.stdout
        assert "unexpected commit digest" in fetched.stderr  # refused on its digest
        assert miner.removeprefix("sha256:") not in runtime.stored()

"""Attack: an image that looks benign to the webhook and runs a miner on the node.

The webhook judges a multi-arch index by the entries a node would pull. It used to judge the
first 16 Linux entries and admit the rest with a warning (so the miner went 17th), to take the
first entry of the pinned architecture whatever its variant (containerd matches variants
exactly, so ``[amd64/v99 benign, amd64 miner]`` ran the miner), and to skip entries a node
does pull: those without a platform, and those spelled ``Linux``/``x86_64``. Each index here is
served by a scripted registry on loopback to the real webhook process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.webhook import certs, oci
from tests.integration.webhook.conftest import PKI, POOL, Server, policy_file
from tests.integration.webhook.reviews import container, pod, review

pytestmark = pytest.mark.slow
MINER = {"Entrypoint": ["/app", "-o", POOL]}
BENIGN = {"Entrypoint": ["/app"], "Cmd": ["--serve"]}

Start = Callable[[oci.HostileServer], Server]


@pytest.fixture
def registry() -> Iterator[oci.HostileServer]:
    with oci.HostileServer() as server:
        yield server


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[Start]:
    """The real webhook, enforcing, refusing what it cannot verify, reading ``registry``."""
    started: list[Server] = []
    pki = PKI(*_pki(tmp_path))

    def start(registry: oci.HostileServer) -> Server:
        strict = policy_file(tmp_path, "strict", actions={"onRegistryFailure": "Deny"})
        args = ["--policy-file", str(strict), "--insecure-registry", registry.host]
        server = Server(pki, [*args, "--registry-timeout", "2"], oci.LOOPBACK_ENV)
        started.append(server)
        return server.wait_ready()

    yield start
    for server in started:
        server.stop()


def _pki(folder: Path) -> tuple[Any, Path, Path, Path]:
    ca = certs.authority()
    cert, key = folder / "tls.crt", folder / "tls.key"
    certs.serving(ca, cert, key)
    return ca, cert, key, folder


def linux(arch: str, variant: str | None = None) -> dict[str, str]:
    return {"os": "linux", "architecture": arch} | ({"variant": variant} if variant else {})


def test_a_miner_past_the_judged_entries_of_an_index_is_not_admitted(
    registry: oci.HostileServer, webhook: Start
) -> None:
    # 16 distinct benign manifests (one per made-up architecture), the miner 17th.
    benign = [
        (oci.serve_image(registry, "wide/app", {**BENIGN, "Env": [f"N={i}"]}), linux(f"a{i}"))
        for i in range(16)
    ]
    miner = (oci.serve_image(registry, "wide/app", MINER), linux("amd64"))
    oci.serve_index(registry, "wide/app", "1", [*benign, miner])
    answer = webhook(registry).review(review(pod(container(f"{registry.host}/wide/app:1"))))
    assert answer["allowed"] is False
    assert "not verified (only 16 of its index's entries were judged" in answer["status"]["message"]


def test_an_unknown_variant_cannot_shadow_the_entry_amd64_nodes_pull(
    registry: oci.HostileServer, webhook: Start
) -> None:
    entries = [
        (oci.serve_image(registry, "variant/app", BENIGN), linux("amd64", "v99")),
        (oci.serve_image(registry, "variant/app", MINER), linux("amd64")),
    ]
    oci.serve_index(registry, "variant/app", "1", entries)
    image = f"{registry.host}/variant/app:1"
    on_amd64 = pod(container(image), nodeSelector={"kubernetes.io/arch": "amd64"})
    answer = webhook(registry).review(review(on_amd64))
    assert answer["allowed"] is False
    assert "pool-url" in answer["status"]["message"]


def test_an_entry_without_a_platform_is_judged_as_nodes_pull_it(
    registry: oci.HostileServer, webhook: Start
) -> None:
    # An amd64 node finds no amd64 entry and pulls the one that declares no platform.
    entries = [
        (oci.serve_image(registry, "bare/app", BENIGN), linux("arm64")),
        (oci.serve_image(registry, "bare/app", MINER), None),
    ]
    oci.serve_index(registry, "bare/app", "1", entries)
    server = webhook(registry)
    image = f"{registry.host}/bare/app:1"
    assert server.review(review(pod(container(image))))["allowed"] is False
    on_amd64 = pod(container(image), nodeSelector={"kubernetes.io/arch": "amd64"})
    assert server.review(review(on_amd64))["allowed"] is False
    on_arm64 = pod(container(image), nodeSelector={"kubernetes.io/arch": "arm64"})
    assert server.review(review(on_arm64))["allowed"] is True  # arm64 nodes pull their own


def test_an_entry_spelled_as_containerd_normalises_it_is_judged(
    registry: oci.HostileServer, webhook: Start
) -> None:
    entries = [
        (oci.serve_image(registry, "spelled/app", BENIGN), linux("arm64")),
        (
            oci.serve_image(registry, "spelled/app", MINER),
            {"os": "Linux", "architecture": "x86_64"},
        ),
    ]
    oci.serve_index(registry, "spelled/app", "1", entries)
    server = webhook(registry)
    image = f"{registry.host}/spelled/app:1"
    assert server.review(review(pod(container(image))))["allowed"] is False
    on_amd64 = pod(container(image), nodeSelector={"kubernetes.io/arch": "amd64"})
    assert server.review(review(on_amd64))["allowed"] is False

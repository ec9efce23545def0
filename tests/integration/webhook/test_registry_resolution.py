"""The real server reads image entrypoints from real registries and decides on them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.webhook import oci
from tests.integration.webhook.conftest import POOL, Images, Server, ServerFactory, policy_file
from tests.integration.webhook.reviews import container, pod, review

pytestmark = pytest.mark.slow


def strict(serve: ServerFactory, images: Images, folder: Path, **spec: object) -> Server:
    policies = policy_file(folder, "strict", actions={"onRegistryFailure": "Deny"}, **spec)
    return serve(
        "--policy-file",
        str(policies),
        "--insecure-registry",
        images.open,
        "--insecure-registry",
        images.token,
        "--insecure-registry",
        images.hanging,
        "--insecure-registry",
        images.tokens.host,
        "--registry-timeout",
        "1",
        env=oci.LOOPBACK_ENV,
    )


@pytest.mark.parametrize(
    ("image", "signal"),
    [
        ("miners/xmrig:6.21", "pool-url"),  # entrypoint-only miner behind a multi-arch index
        ("miners/cmdonly:1", "pool-url"),  # Cmd-only miner
        ("miners/envminer:1", "miner-env"),  # configured through image Env
    ],
)
def test_miners_in_image_configs_are_denied(
    serve: ServerFactory, images: Images, tmp_path: Path, image: str, signal: str
) -> None:
    server = strict(serve, images, tmp_path)
    answer = server.review(review(pod(container(images.ref(image), name="worker"))))
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert 'container "worker"' in message
    assert signal in message
    assert 'MinerPolicy "strict"' in message


def test_benign_images_and_overriding_commands_are_allowed(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    server = strict(serve, images, tmp_path)
    benign = server.review(review(pod(container(images.ref("benign/web:1")))))
    assert benign == {"uid": benign["uid"], "allowed": True}
    # A command the pod sets replaces the image's miner (Entrypoint and Cmd): nothing of it runs.
    replaced = pod(container(images.ref("miners/cmdonly:1"), command=["/bin/sleep", "1d"]))
    assert server.review(review(replaced))["allowed"] is True
    # ...unless the image's name gives it away: a repository named after a miner is refused
    # whatever command the pod sets (issue 12, image-name heuristics).
    named = pod(container(images.ref("miners/xmrig:6.21"), command=["/bin/sleep", "1d"]))
    answer = server.review(review(named))
    assert answer["allowed"] is False
    assert "image-name" in answer["status"]["message"]
    args_only = pod(container(images.ref("miners/cmdonly:1"), args=["--version"]))
    assert server.review(review(args_only))["allowed"] is True


def test_an_unpinned_pod_is_judged_on_every_platform_a_pinned_one_on_its_own(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    server = strict(serve, images, tmp_path)
    image = images.ref("mixed/app:1")  # amd64 entry benign, arm64 entry a miner
    unpinned = server.review(review(pod(container(image, name="app"))))
    assert unpinned["allowed"] is False
    message = unpinned["status"]["message"]
    assert 'container "app"' in message
    assert "image config (linux/arm64): " in message
    assert "linux/amd64" not in message
    on_amd = pod(container(image), nodeSelector={"kubernetes.io/arch": "amd64"})
    assert server.review(review(on_amd))["allowed"] is True
    on_arm = pod(container(image), nodeSelector={"kubernetes.io/arch": "arm64"})
    answer = server.review(review(on_arm))
    assert answer["allowed"] is False
    assert "image config (" not in answer["status"]["message"]


def test_attestation_entries_of_an_index_are_not_judged(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    server = strict(serve, images, tmp_path)
    answer = server.review(review(pod(container(images.ref("attested/app:1")))))
    assert answer == {"uid": answer["uid"], "allowed": True}


def test_an_index_listing_one_manifest_many_times_costs_one_and_hides_nothing(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    # 16 entries share one benign manifest, the 17th is a miner: two manifests to judge.
    # (Distinct manifests past the limit: tests/security/test_registry_images.py.)
    server = strict(serve, images, tmp_path)
    image = images.ref("wide/app:1")
    answer = server.review(review(pod(container(image))))
    assert answer["allowed"] is False
    assert "image config (linux/arch16)" in answer["status"]["message"]
    pinned = pod(container(image), nodeSelector={"kubernetes.io/arch": "arch16"})
    assert server.review(review(pinned))["allowed"] is False


def test_digest_references_resolve_and_digest_exemptions_apply(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    digest = images.digests["miners/cmdonly:1"]
    pinned = images.ref(f"miners/cmdonly@{digest}")
    server = strict(serve, images, tmp_path)
    assert server.review(review(pod(container(pinned))))["allowed"] is False
    exempt_folder = tmp_path / "exempt"
    exempt_folder.mkdir()
    exempting = strict(
        serve,
        images,
        exempt_folder,
        exemptions={"images": [f"{images.open}/miners/cmdonly@{digest}"]},
    )
    by_tag = pod(container(images.ref("miners/cmdonly:1")))
    assert exempting.review(review(by_tag))["allowed"] is True


def test_a_token_auth_registry_is_read_with_an_anonymous_token(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    server = strict(serve, images, tmp_path)
    answer = server.review(review(pod(container(images.ref("miners/cmdonly:1", images.token)))))
    assert answer["allowed"] is False
    assert ("repository:miners/cmdonly:pull", None) in images.tokens.requests


def test_a_private_image_without_credentials_follows_on_registry_failure(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    server = strict(serve, images, tmp_path)
    answer = server.review(review(pod(container(images.ref("private/app:1", images.token)))))
    assert answer["allowed"] is False
    assert "not verified" in answer["status"]["message"]
    assert "refused access" in answer["status"]["message"]


def test_a_hanging_registry_is_cut_off_at_the_deadline(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    server = strict(serve, images, tmp_path)
    started = time.monotonic()
    answer = server.review(review(pod(container(images.ref("team/app:1", images.hanging)))))
    elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert answer["allowed"] is False
    assert "did not answer within 1s" in answer["status"]["message"]


def test_audit_policies_allow_an_unverifiable_image_with_a_warning(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    policies = policy_file(tmp_path, "audit", mode="Audit")
    server = serve(
        "--policy-file",
        str(policies),
        "--insecure-registry",
        images.hanging,
        "--registry-timeout",
        "0.5",
        env=oci.LOOPBACK_ENV,
    )
    answer = server.review(review(pod(container(images.ref("team/app:1", images.hanging)))))
    assert answer["allowed"] is True
    assert "not verified" in answer["warnings"][0]
    assert answer["auditAnnotations"]["verdict"] == "warned"
    miner = server.review(review(pod(container("alpine", command=["xmrig", "-o", POOL]))))
    assert miner["allowed"] is True
    assert "would run a cryptominer" in miner["warnings"][0]


def test_a_registry_not_marked_insecure_is_not_read_over_plain_http(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    policies = policy_file(tmp_path, "strict", actions={"onRegistryFailure": "Deny"})
    server = serve("--policy-file", str(policies), "--registry-timeout", "1", env=oci.LOOPBACK_ENV)
    answer = server.review(review(pod(container(images.ref("miners/cmdonly:1")))))
    assert answer["allowed"] is False
    assert "not verified" in answer["status"]["message"]


def test_the_second_request_for_an_image_is_served_from_the_cache(
    serve: ServerFactory, images: Images, tmp_path: Path
) -> None:
    server = strict(serve, images, tmp_path)
    image = images.ref("benign/web:1")
    for _ in range(3):
        assert server.review(review(pod(container(image))))["allowed"] is True
    metrics = server.client.get("/metrics").text
    assert 'minerguard_webhook_image_resolutions_total{result="fetched"} 1.0' in metrics
    assert 'minerguard_webhook_image_resolutions_total{result="cached"} 2.0' in metrics

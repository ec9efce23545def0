"""Attack: an image exemption's ``*`` crosses ``/`` and the registry boundary.

Exemptions used ``fnmatch`` on ``registry/repository``, so ``*`` matched ``/`` too:
``*.dkr.ecr.us-east-1.amazonaws.com/*`` exempted ``attacker.example/x.dkr.ecr.us-east-1.
amazonaws.com/miner``, an image on a registry the attacker runs, and an exempt image is
invisible to every layer. Registry host and repository are now matched separately, ``*``
never crosses ``/`` (nor, in a host, ``.`` or ``:``), and ``**`` is the only way to span
repository path segments.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from minerguard import evaluate, podspec
from minerguard.errors import PolicyError
from tests.integration.webhook import oci
from tests.integration.webhook.conftest import POOL, ServerFactory, pki, serve
from tests.integration.webhook.reviews import review
from tests.kube_emulator import EmulatorThread
from tests.support import policy, policy_document

__all__ = ["pki", "serve"]  # fixtures of the webhook's integration suite, used here

ECR = "*.dkr.ecr.us-east-1.amazonaws.com/*"
MINER = ["xmrig", "-o", "stratum+tcp://pool.supportxmr.com:3333"]


def exempt(pattern: str, image: str) -> bool:
    return policy(exemptions={"images": [pattern]}).exemption(image) is not None


def pod_running(image: str, command: list[str] = MINER) -> dict[str, object]:
    return {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "apps"},
        "spec": {"containers": [{"name": "c", "image": image, "command": command}]},
    }


@pytest.mark.parametrize(
    "image",
    [
        "attacker.example/x.dkr.ecr.us-east-1.amazonaws.com/miner",
        "attacker.example/a/b.dkr.ecr.us-east-1.amazonaws.com/miner:1",
        "123.dkr.ecr.us-east-1.amazonaws.com.attacker.example/miner",
        "evil.123.dkr.ecr.us-east-1.amazonaws.com/miner",
    ],
)
def test_an_ecr_wildcard_exemption_does_not_exempt_an_attackers_registry(image: str) -> None:
    assert not exempt(ECR, image)
    decision = evaluate.evaluate_object(pod_running(image), [policy(exemptions={"images": [ECR]})])
    assert not decision.allowed
    assert decision.exempt == ()


@pytest.mark.parametrize(
    ("pattern", "image"),
    [
        ("registry.example/tools/*", "registry.example/tools/x/miner"),
        ("registry.example/tools/*", "registry.example/tools"),
        ("registry.example/*", "registry.example.attacker.example/tools"),
        ("docker.io/library/*", "docker.io/attacker/library/x"),
        ("registry.example/team-*", "registry.example/team-a/../../attacker/miner"),
        ("*/app", "attacker.example/app"),
    ],
)
def test_a_wildcard_never_crosses_a_slash_or_the_host_boundary(pattern: str, image: str) -> None:
    assert not exempt(pattern, image)


@pytest.mark.parametrize(
    ("pattern", "image"),
    [
        (ECR, "123456789012.dkr.ecr.us-east-1.amazonaws.com/app"),
        (ECR, "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.2@sha256:" + "a" * 64),
        ("registry.example/tools/*", "registry.example/tools/builder:3"),
        ("registry.example/tools/**", "registry.example/tools/x/y/builder"),
        ("registry.example/tools/**", "registry.example/tools/builder"),
        ("registry.example:5000/*", "registry.example:5000/x"),
        ("docker.io/library/*", "busybox"),
        ("busybox", "docker.io/library/busybox:1.36"),
        ("team-*/*", "team-a/app"),
    ],
)
def test_legitimate_exemptions_still_match(pattern: str, image: str) -> None:
    assert exempt(pattern, image)


def test_a_digest_pin_exempts_that_digest_only() -> None:
    pinned = "registry.example/tools/builder@sha256:" + "b" * 64
    compiled = policy(exemptions={"images": [pinned]})
    assert compiled.exemption("registry.example/tools/builder@sha256:" + "b" * 64)
    assert compiled.exemption("registry.example/tools/builder:3", digest="sha256:" + "b" * 64)
    assert compiled.exemption("registry.example/tools/builder:3") is None
    assert compiled.exemption("registry.example/tools/builder@sha256:" + "c" * 64) is None


@pytest.mark.parametrize("pattern", ["registry.example/a**b", "**.example/x", "*.*/x", "*:*/x"])
def test_exemptions_that_would_cover_any_registry_or_are_ambiguous_are_refused(
    pattern: str,
) -> None:
    with pytest.raises(PolicyError, match=r"exemptions\.images\[0\]"):
        policy(exemptions={"images": [pattern]})


TRUSTED = "registry.example/tools/builder:3"
TRUSTED_CONFIG = podspec.ImageConfig(entrypoint=("/usr/bin/build",), cmd=("--all",))


def test_an_exempt_image_does_not_exempt_a_command_the_pod_sets() -> None:
    """The image's publisher is trusted, not whoever writes the pod: its override is judged."""
    exempting = policy(exemptions={"images": ["registry.example/tools/*"]})
    overridden = evaluate.evaluate_object(pod_running(TRUSTED), [exempting])
    assert not overridden.allowed
    assert "pool-url" in overridden.message


def test_an_exempt_image_with_args_set_by_the_pod_is_judged_on_them() -> None:
    exempting = policy(exemptions={"images": ["registry.example/tools/*"]})
    obj = pod_running(TRUSTED)
    container = obj["spec"]["containers"][0]  # type: ignore[index]
    del container["command"]
    container["args"] = ["-o", "stratum+tcp://pool.supportxmr.com:3333"]
    decision = evaluate.evaluate_object(obj, [exempting], image_configs={TRUSTED: TRUSTED_CONFIG})
    assert not decision.allowed


def test_an_exempt_image_running_its_own_entrypoint_stays_exempt() -> None:
    miner_config = podspec.ImageConfig(entrypoint=("xmrig",), cmd=tuple(MINER[1:]))
    exempting = policy(exemptions={"images": ["registry.example/tools/*"]})
    obj = pod_running(TRUSTED)
    del obj["spec"]["containers"][0]["command"]  # type: ignore[index]
    decision = evaluate.evaluate_object(obj, [exempting], image_configs={TRUSTED: miner_config})
    assert decision.allowed
    assert decision.exempt == (
        "c: image registry.example/tools/builder is exempt "
        "(spec.exemptions.images[0]: registry.example/tools/*)",
    )


@pytest.mark.slow
def test_kubectl_exec_into_an_exempt_image_is_judged_on_the_command_it_runs(
    kube: EmulatorThread, serve: ServerFactory, tmp_path: Path
) -> None:
    """The real webhook against the emulator: an exec'd command is not the image's own."""
    created = httpx.post(
        f"{kube.url}/api/v1/namespaces/apps/pods",
        json={
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "toolbox"},
            "spec": {"containers": [{"name": "shell", "image": "busybox:1.36"}]},
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    exempting = tmp_path / "exempt.yaml"
    exempting.write_text(
        json.dumps(policy_document("default", exemptions={"images": ["docker.io/library/*"]}))
    )
    server = serve("--kube-server", kube.url, "--policy-file", str(exempting), env=oci.LOOPBACK_ENV)
    options = {"kind": "PodExecOptions", "apiVersion": "v1", "command": ["xmrig", "-o", POOL]}
    refused = server.review(
        review(
            options, kind="PodExecOptions", operation="CONNECT", sub_resource="exec", name="toolbox"
        )
    )
    assert refused["allowed"] is False
    assert 'MinerPolicy "default"' in refused["status"]["message"]
    shell = {**options, "command": ["/bin/sh", "-c", "ls /"]}
    allowed = server.review(
        review(
            shell, kind="PodExecOptions", operation="CONNECT", sub_resource="exec", name="toolbox"
        )
    )
    assert allowed["allowed"] is True

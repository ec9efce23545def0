"""The dry-run view of policies: ``minerguard scan --explain``.

With several policies and their exemptions in force, an administrator could not see which
policy covered a workload, which exemption applied and why, and which outcome won; an
exemption wider than meant (a ``*`` that crossed ``/``) went unnoticed. ``--explain`` prints,
per object, every policy's coverage, exemptions and outcome, and the strictest outcome.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import policy, policy_document, wait_for
from tests.unit.test_scan import run

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: miner, namespace: apps}
spec:
  containers:
  - name: c
    image: registry.example/tools/builder:3
    command: [xmrig, -o, "stratum+tcp://pool.supportxmr.com:3333"]
---
apiVersion: v1
kind: Pod
metadata: {name: ops, namespace: kube-system}
spec:
  containers:
  - {name: c, image: busybox, command: [sleep, "1"]}
"""


def write_policies(tmp_path: Path) -> Path:
    documents = [
        policy_document(
            "audit",
            mode="Audit",
            exemptions={"images": ["registry.example/tools/*"], "namespaces": ["lab"]},
        ),
        policy_document("default", mode="Enforce"),
    ]
    path = tmp_path / "policies.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}))
    return path


def test_explain_names_each_policy_its_exemptions_and_the_strictest_outcome(
    tmp_path: Path,
) -> None:
    policies = write_policies(tmp_path)
    result = run("--explain", "--policy", str(policies), "-", stdin=PODS)
    assert result.returncode == 1
    out = result.stdout
    miner, ops = out.split("Pod/kube-system/ops")
    assert 'policy "default" (Enforce, admission Deny): covers namespace apps: DENY' in miner
    assert 'policy "audit" (Audit): covers namespace apps: WARN' in miner
    assert (
        "exempt: c: image registry.example/tools/builder is exempt "
        "(spec.exemptions.images[0]: registry.example/tools/*), not the command the pod sets"
    ) in miner
    assert 'strictest: DENY by MinerPolicy "default"' in miner
    assert miner.index('policy "default"') < miner.index('policy "audit"'), "strictest first"
    assert (
        'policy "default" (Enforce, admission Deny): does not cover: '
        "namespace kube-system is in spec.excludedNamespaces"
    ) in ops
    assert "strictest: OK (no policy covers it)" in ops


def test_explain_in_json_lists_the_same_per_policy(tmp_path: Path) -> None:
    policies = write_policies(tmp_path)
    result = run("--explain", "--output", "json", "--policy", str(policies), "-", stdin=PODS)
    first, second = json.loads(result.stdout)
    names = [entry["policy"] for entry in first["explain"]["policies"]]
    assert names == ["default", "audit"]
    assert first["explain"]["strictest"] == {"verdict": "DENY", "policy": "default"}
    audit = first["explain"]["policies"][1]
    assert audit["covers"] is True
    assert audit["verdict"] == "WARN"
    assert audit["exempt"][0].startswith("c: image registry.example/tools/builder is exempt")
    assert second["explain"]["policies"][0]["covers"] is False


def test_a_policys_status_says_what_each_exemption_covers() -> None:
    """Written by the operator into ``status.exemptions``: a wide exemption is visible."""
    compiled = policy(
        exemptions={
            "images": [
                "*.dkr.ecr.us-east-1.amazonaws.com/*",
                "registry.example/hpc/solver@sha256:" + "a" * 64,
                "busybox",
            ],
            "namespaces": ["lab"],
            "podLabels": {"matchLabels": {"debug": "allowed"}},
            "commandPatterns": ["^/opt/bench "],
        }
    )
    lines = compiled.exemption_coverage()
    assert lines[0] == (
        "spec.exemptions.images[0]: any tag or digest of repositories matching * in registries"
        " matching *.dkr.ecr.us-east-1.amazonaws.com (* never crosses . : or /; pin a digest to"
        " exempt one image)"
    )
    assert lines[1] == (
        "spec.exemptions.images[1]: only registry.example/hpc/solver@sha256:" + "a" * 64
    )
    assert lines[2].startswith(
        "spec.exemptions.images[2]: any tag or digest of docker.io/library/busybox"
    )
    assert "spec.exemptions.namespaces: every pod in lab" in lines
    assert any(line.startswith("spec.exemptions.podLabels: ") for line in lines)
    assert "spec.exemptions.commandPatterns[0]: command lines matching ^/opt/bench " in lines


@pytest.mark.slow
def test_the_real_operator_writes_the_exemption_coverage_into_the_status(
    kube: EmulatorThread,
) -> None:
    cluster = Cluster(kube.url)
    try:
        cluster.policy("wide", exemptions={"images": ["registry.example/tools/*"]})
        with running(kube.url):
            status = wait_for(
                lambda: cluster.get_policy("wide").get("status", {}).get("exemptions"),
                what="status.exemptions",
            )
        assert status == [
            "spec.exemptions.images[0]: any tag or digest of repositories matching tools/* in"
            " registries matching registry.example (* never crosses . : or /; pin a digest to"
            " exempt one image)"
        ]
    finally:
        cluster.api.close()

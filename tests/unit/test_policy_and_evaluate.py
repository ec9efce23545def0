from pathlib import Path
from typing import Any

import pytest

from minerguard import evaluate, manifests, podspec
from minerguard.compiled_policy import default_policy, load_policy_file
from minerguard.errors import PolicyError
from tests.support import MONERO_WALLET, policy

WALLET = MONERO_WALLET


def pod(command: list[str], namespace: str = "apps", image: str = "busybox") -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "x", "namespace": namespace, "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": image, "command": command}]},
    }


MINER = ["xmrig", "-o", "stratum+tcp://pool.example:3333", "-u", WALLET]


def test_enforce_denies_with_one_line_naming_container_signal_and_policy() -> None:
    decision = evaluate.evaluate_object(pod(MINER), [default_policy()])
    assert not decision.allowed
    assert decision.message.count("\n") == 0
    assert 'container "c"' in decision.message
    assert "pool-url" in decision.message
    assert 'MinerPolicy "default"' in decision.message


def test_audit_allows_and_warns() -> None:
    decision = evaluate.evaluate_object(pod(MINER), [policy(mode="Audit")])
    assert decision.allowed
    assert decision.warnings
    assert "pool-url" in decision.warnings[0]


def test_warn_action_allows_in_enforce_mode() -> None:
    audit = policy(actions={"admission": "Warn"})
    assert evaluate.evaluate_object(pod(MINER), [audit]).allowed


def test_excluded_namespaces_and_selectors_limit_coverage() -> None:
    assert evaluate.evaluate_object(pod(MINER, "kube-system"), [default_policy()]).allowed
    selective = policy(namespaceSelector={"matchLabels": {"team": "data"}})
    assert evaluate.evaluate_object(pod(MINER), [selective], namespace_labels={}).allowed
    decision = evaluate.evaluate_object(pod(MINER), [selective], namespace_labels={"team": "data"})
    assert not decision.allowed


@pytest.mark.parametrize(
    "exemptions",
    [
        {"podLabels": {"matchLabels": {"app": "x"}}},
        {"commandPatterns": ["stratum\\+tcp://pool\\.example"]},
        {"namespaces": ["apps"]},
    ],
)
def test_exemptions_are_honoured(exemptions: dict[str, Any]) -> None:
    compiled = policy(exemptions=exemptions)
    assert evaluate.evaluate_object(pod(MINER), [compiled]).allowed


@pytest.mark.parametrize("exempt", ["docker.io/library/busybox", "docker.io/library/*", "busybox"])
def test_image_exemptions_cover_what_the_image_itself_runs(exempt: str) -> None:
    """An exempt image's own entrypoint is not judged; a pod's ``command`` would be."""
    compiled = policy(exemptions={"images": [exempt]})
    obj = pod(MINER)
    del obj["spec"]["containers"][0]["command"]
    config = podspec.ImageConfig(entrypoint=tuple(MINER[:1]), cmd=tuple(MINER[1:]))
    configs = {"busybox": config}
    assert evaluate.evaluate_object(obj, [compiled], image_configs=configs).allowed
    assert not evaluate.evaluate_object(pod(MINER), [compiled]).allowed


def test_policy_signatures_extend_the_builtin_bundle() -> None:
    compiled = policy(signatures={"poolHosts": ["pool.corp.example"], "poolPorts": [14444]})
    decision = evaluate.evaluate_object(pod(["app", "pool.corp.example:14444"]), [compiled])
    assert not decision.allowed


def test_without_builtin_signatures_only_the_policys_own_apply() -> None:
    compiled = policy(builtinSignatures=False, signatures={"binaries": ["foo"]})
    assert evaluate.evaluate_object(pod(MINER[:3]), [compiled]).allowed


def test_unverifiable_images_follow_the_policys_choice() -> None:
    no_command = {
        "kind": "Pod",
        "metadata": {"namespace": "a"},
        "spec": {"containers": [{"name": "c", "image": "r/i"}]},
    }
    errors = {"r/i": "registry unreachable"}
    allow = policy()
    deny = policy(actions={"onRegistryFailure": "Deny"})
    allowed = evaluate.evaluate_object(no_command, [allow], image_errors=errors)
    assert allowed.allowed
    assert "not verified" in allowed.warnings[0]
    refused = evaluate.evaluate_object(no_command, [deny], image_errors=errors)
    assert not refused.allowed
    assert "registry unreachable" in refused.message


def test_image_config_supplies_the_entrypoint() -> None:
    no_command = {
        "kind": "Pod",
        "metadata": {"namespace": "a"},
        "spec": {"containers": [{"name": "c", "image": "r/i", "args": ["-u", WALLET]}]},
    }
    config = podspec.ImageConfig(entrypoint=("/usr/bin/xmrig",), digest="sha256:" + "0" * 64)
    decision = evaluate.evaluate_object(
        no_command, [default_policy()], image_configs={"r/i": config}
    )
    assert not decision.allowed
    assert decision.findings[0].image_digest == "sha256:" + "0" * 64


def test_quarantined_digests_are_refused_anywhere() -> None:
    digest = "sha256:" + "ab" * 32
    compiled = policy(status={"quarantinedImages": [{"digest": digest}]})
    benign = pod(["nginx"], image=f"r/web@{digest}")
    decision = evaluate.evaluate_object(benign, [compiled])
    assert not decision.allowed
    assert "quarantined" in decision.message


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"signatures": {"argumentPatterns": ["ok", "(unclosed"]}}, "argumentPatterns[1]"),
        ({"signatures": {"walletPatterns": ["(?<=x)y"]}}, "walletPatterns[0]"),
        ({"exemptions": {"commandPatterns": ["a)"]}}, "commandPatterns[0]"),
        ({"exemptions": {"images": ["x@md5:1"]}}, "exemptions.images[0]"),
        ({"signatures": {"binaries": [" "]}}, "binaries[0]"),
    ],
)
def test_broken_policies_are_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyError) as err:
        policy(**spec)
    assert field in err.value.field


def test_policy_files_are_loaded_with_errors_naming_file_and_document(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("apiVersion: minerguard.io/v1alpha1\nkind: MinerPolicy\nmetadata: {name: a}\n")
    assert [p.name for p in load_policy_file(good)] == ["a"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: MinerPolicy\nmetadata: {name: a}\n---\nkind: MinerPolicy\nspec: {mode: X}\n"
    )
    with pytest.raises(PolicyError, match=r"bad.yaml\[1\]: spec.mode"):
        load_policy_file(bad)


def test_policy_files_are_read_with_the_manifest_readers_checks(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text(
        "kind: MinerPolicyList\nitems:\n"
        "- {apiVersion: minerguard.io/v1alpha1, kind: MinerPolicy, metadata: {name: a}}\n"
        "- {apiVersion: minerguard.io/v1alpha1, kind: MinerPolicy, metadata: {name: b}}\n"
    )
    assert [p.name for p in load_policy_file(listed)] == ["a", "b"]
    as_json = tmp_path / "p.json"
    as_json.write_text('{"kind": "MinerPolicy", "metadata": {"name": "j"}}')
    assert [p.name for p in load_policy_file(as_json)] == ["j"]
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(manifests.MAX_INPUT_BYTES + 10)
    with pytest.raises(PolicyError, match=r"huge.yaml: larger than"):
        load_policy_file(huge)
    with pytest.raises(PolicyError, match=r"missing.yaml: cannot read"):
        load_policy_file(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(PolicyError, match=r"scalar.yaml\[0\]: a str, not a Kubernetes object"):
        load_policy_file(scalar)

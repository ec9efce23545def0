"""A policy's system view: its excluded namespaces judged, only conclusive evidence refused.

What ``/validate/system`` decides with (:meth:`CompiledPolicy.system_view`); the webhook's
integration test drives the same through the real process.
"""

from __future__ import annotations

from typing import Any

import pytest

from minerguard import evaluate
from minerguard.compiled_policy import CompiledPolicy
from minerguard.signatures.engine import THRESHOLD
from tests import support

POOL = "stratum+tcp://pool.supportxmr.com:3333"
WALLET = "49ziYBCuc6bwRRpC2i57UiJo8kt4KNWjM34qJ4XuxqdGDvzoXe8ohMtTSaQyeiyTSo4bZvh" + (
    "aHLL94NkSYksnFJ1tUxWhZqb"
)
CONCLUSIVE = ["xmrig", "-o", POOL, "-u", WALLET, "--donate-level", "1"]
WEAK = ["/tmp/app", "-o", "stratum+tcp://10.0.0.5:3333"]


def daemonset(command: list[str], namespace: str = "kube-system", **pod: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "kube-proxy-ext", "namespace": namespace},
        "spec": {
            "template": {
                "metadata": {"labels": {"k8s-app": "kube-proxy-ext"}},
                "spec": {
                    "containers": [{"name": "c", "image": "alpine", "command": command}],
                    **pod,
                },
            }
        },
    }


def view(**spec: Any) -> CompiledPolicy:
    found = support.policy("guard", **spec).system_view("admission")
    assert found is not None
    return found


def decide(obj: dict[str, Any], policy: CompiledPolicy, **kw: Any) -> evaluate.Decision:
    return evaluate.evaluate_object(obj, [policy], **kw)


def test_the_weak_case_is_a_miner_elsewhere_but_not_conclusive() -> None:
    ordinary = support.policy("guard")
    weak = decide(daemonset(WEAK, "apps"), ordinary)
    assert not weak.allowed
    assert THRESHOLD <= weak.findings[0].verdict.score < ordinary.conclusive_score


def test_a_conclusive_miner_in_kube_system_is_denied_and_a_weak_one_admitted_with_a_warning() -> (
    None
):
    policy = view()
    denied = decide(daemonset(CONCLUSIVE), policy)
    assert not denied.allowed
    assert "system namespace: conclusive at 2" in denied.message
    admitted = decide(daemonset(WEAK), policy)
    assert admitted.allowed
    assert any("not conclusive" in w for w in admitted.warnings)
    # The ordinary policy never looked there, and still does not.
    assert decide(daemonset(CONCLUSIVE), support.policy("guard")).policies == ()


def test_what_counts_as_conclusive_is_the_policys_setting() -> None:
    assert not decide(daemonset(WEAK), view(systemNamespaces={"conclusiveScore": 1.0})).allowed


@pytest.mark.parametrize(
    "spec",
    [
        {"mode": "Audit"},
        {"dryRun": True},
        {"actions": {"admission": "Warn"}},
        {"exemptions": {"namespaces": ["kube-system"]}},
        {"namespaceSelector": {"matchLabels": {"minerguard": "on"}}},
    ],
    ids=["audit", "dry-run", "warn", "namespace-exempt", "selector"],
)
def test_the_system_view_is_never_stricter_than_the_policy(spec: dict[str, Any]) -> None:
    assert decide(daemonset(CONCLUSIVE), view(**spec)).allowed


def test_admission_off_gives_no_view_and_ordinary_namespaces_are_not_in_it() -> None:
    off = support.policy("guard", systemNamespaces={"admission": "Off"})
    assert off.system_view("admission") is None
    assert off.system_view("runtime") is not None
    assert decide(daemonset(CONCLUSIVE, "apps"), view()).policies == ()


def test_what_cannot_be_verified_never_blocks_a_system_namespace() -> None:
    policy = view(actions={"onRegistryFailure": "Deny"})
    no_command = daemonset(CONCLUSIVE)
    del no_command["spec"]["template"]["spec"]["containers"][0]["command"]
    decision = decide(no_command, policy, image_errors={"alpine": "registry unreachable"})
    assert decision.allowed
    assert decision.unverified

"""What the operator plans to do about a detection, for each policy setting."""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.api.detection import MinerDetection, Phase
from minerguard.api.policy import RuntimeAction
from minerguard.compiled_policy import CompiledPolicy
from minerguard_operator.decide import planning
from tests.support import POLICY_NAME, policy

TARGET = planning.Target(namespace="apps", pod_labels={"app": "web"}, image="docker.io/x/app:1")


def detection(**spec: Any) -> MinerDetection:
    base = {"layer": "Behaviour", "score": 2, "podName": "web-1", "policy": POLICY_NAME}
    return MinerDetection.model_validate(
        {"metadata": {"name": "d", "namespace": "apps"}, "spec": {**base, **spec}}
    )


def plan(
    compiled: CompiledPolicy | None, target: planning.Target = TARGET, **spec: Any
) -> planning.Plan:
    return planning.plan(detection(**spec), compiled, target, policy_name=POLICY_NAME)


def test_steps_run_in_a_safe_order_whatever_order_the_policy_lists() -> None:
    planned = plan(
        policy(actions={"runtime": ["DeletePod", "StopOwner", "QuarantineImage", "Alert"]})
    )
    assert planned.steps == (
        RuntimeAction.ALERT,
        RuntimeAction.QUARANTINE_IMAGE,
        RuntimeAction.STOP_OWNER,
        RuntimeAction.DELETE_POD,
    )
    assert planned.phase is Phase.ACTED
    assert planned.destructive


def test_isolate_replaces_delete_and_kill_process_is_left_to_the_agent() -> None:
    planned = plan(policy(actions={"runtime": ["KillProcess", "Isolate", "DeletePod"]}))
    assert planned.steps == (RuntimeAction.ISOLATE,)
    assert planned.notes == (
        "KillProcess is done by the node agent",
        "DeletePod replaced by Isolate: the pod is kept for forensics",
    )
    assert planned.held == (RuntimeAction.DELETE_POD,)  # should isolation not hold
    assert plan(policy(actions={"runtime": ["Isolate"]})).held == ()


def test_alert_only_policies_do_not_count_as_destructive() -> None:
    planned = plan(policy(actions={"runtime": ["Alert"]}))
    assert (planned.steps, planned.phase, planned.destructive) == (
        (RuntimeAction.ALERT,),
        Phase.ALERTED,
        False,
    )


@pytest.mark.parametrize(
    ("compiled", "target", "spec", "phase", "message"),
    [
        (None, TARGET, {}, Phase.ALERTED, 'MinerPolicy "guard" not found: alert only'),
        (
            policy(excludedNamespaces=["apps"]),
            TARGET,
            {},
            Phase.ALERTED,
            'namespace apps is excluded by "guard": alert only (spec.systemNamespaces)',
        ),
        (
            policy(excludedNamespaces=["apps"], systemNamespaces={"runtime": "Off"}),
            TARGET,
            {},
            Phase.SKIPPED,
            'namespace apps is not covered by "guard"',
        ),
        (
            policy(exemptions={"namespaces": ["apps"]}),
            TARGET,
            {},
            Phase.SKIPPED,
            'namespace apps is not covered by "guard"',
        ),
        (
            policy(namespaceSelector={"matchLabels": {"mg": "on"}}),
            TARGET,
            {},
            Phase.SKIPPED,
            'namespace apps is not covered by "guard"',
        ),
        (
            policy(exemptions={"images": ["docker.io/x/*"]}),
            TARGET,
            {},
            Phase.SKIPPED,
            "exempt: image docker.io/x/app is exempt (spec.exemptions.images[0]: docker.io/x/*)",
        ),
        (
            policy(exemptions={"commandPatterns": ["^backup "]}),
            planning.Target("apps", command_line="backup --all"),
            {},
            Phase.SKIPPED,
            "exempt: command line is exempt (spec.exemptions.commandPatterns[0])",
        ),
        (policy(mode="Audit"), TARGET, {}, Phase.ALERTED, "Audit mode: alert only"),
        (policy(), TARGET, {"mode": "Audit"}, Phase.ALERTED, "Audit mode: alert only"),
        (
            policy(),
            TARGET,
            {"layer": "Admission"},
            Phase.ALERTED,
            "admission already decided about this object",
        ),
        (policy(dryRun=True), TARGET, {}, Phase.ALERTED, "dry run: would DeletePod"),
    ],
)
def test_when_the_operator_holds_back(
    compiled: CompiledPolicy | None,
    target: planning.Target,
    spec: dict[str, Any],
    phase: Phase,
    message: str,
) -> None:
    planned = plan(compiled, target, **spec)
    assert (planned.phase, planned.message) == (phase, message)
    assert not planned.destructive


def test_a_covered_namespace_selector_acts() -> None:
    target = planning.Target("apps", namespace_labels={"mg": "on"})
    assert (
        plan(policy(namespaceSelector={"matchLabels": {"mg": "on"}}), target).phase is Phase.ACTED
    )


def test_workload_detections_only_stop_the_owner() -> None:
    planned = plan(
        policy(actions={"runtime": ["DeletePod", "StopOwner", "Isolate"]}), objectKind="Deployment"
    )
    assert planned.steps == (RuntimeAction.STOP_OWNER,)


def test_suppression_keeps_the_alert_and_says_until_when() -> None:
    planned = planning.suppress(plan(policy()), "2026-11-23T08:00:00Z")
    assert planned.steps == (RuntimeAction.ALERT,)
    assert planned.phase is Phase.SUPPRESSED
    assert planned.would == (RuntimeAction.DELETE_POD,)
    assert (
        planned.message
        == "rate limit reached: alert only until 2026-11-23T08:00:00Z (held back: DeletePod)"
    )


def test_replicas_get_distinct_peering_priorities_unless_one_is_set() -> None:
    from minerguard_operator.settings import OperatorSettings

    priorities = {OperatorSettings().priority for _ in range(20)}
    assert len(priorities) > 1  # same-priority peers would all pause
    assert OperatorSettings(priority=5).priority == 5

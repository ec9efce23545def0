"""Status documents, background-scan records, peering and the policy book."""

from __future__ import annotations

from typing import Any

from minerguard.api.detection import ActionTaken, Phase
from minerguard.api.policy import MinerPolicy
from minerguard.compiled_policy import compile_policy
from minerguard.policy_book import PolicyBook
from minerguard.timestamps import format_time
from minerguard_operator.decide import marks, peers, records, scanning, statuses
from minerguard_operator.settings import OperatorSettings

MINER = ["xmrig", "-o", "stratum+tcp://pool.example:3333"]


def test_detection_status_summarises_actions_and_leaves_occurrences_alone() -> None:
    taken = [ActionTaken("Alert"), ActionTaken("DeletePod", "grace 0s")]
    status = statuses.detection_status(Phase.ACTED, taken, "", "t")
    assert status == {
        "phase": "Acted",
        "action": "Alert,DeletePod",
        "actionsTaken": ["Alert", "DeletePod: grace 0s"],
        "actedAt": "t",
    }
    assert statuses.summary([], Phase.SKIPPED) == "Skipped"


def test_conditions_keep_their_transition_time_until_the_status_changes() -> None:
    first = statuses.policy_conditions([], error=None, open_until=None, now="t1", generation=1)
    second = statuses.policy_conditions(first, error=None, open_until="t9", now="t2", generation=2)
    ready, circuit = second
    assert (ready["status"], ready["lastTransitionTime"], ready["observedGeneration"]) == (
        "True",
        "t1",
        2,
    )
    assert (circuit["status"], circuit["reason"], circuit["lastTransitionTime"]) == (
        "True",
        "RateLimitExceeded",
        "t2",
    )
    broken = statuses.policy_conditions(
        second, error="spec.x: bad", open_until=None, now="t3", generation=3
    )
    assert broken[0] == {
        "type": "Ready",
        "status": "False",
        "reason": "InvalidSpec",
        "message": "spec.x: bad",
        "lastTransitionTime": "t3",
        "observedGeneration": 3,
    }


def test_counts_come_from_the_detections_that_exist() -> None:
    made = [
        records.record({"metadata": {"name": str(i)}, "status": {"phase": p}})
        for i, p in enumerate(["Acted", "Acted", "Suppressed", "Alerted"])
    ]
    assert statuses.counts(made) == {"detections": 4, "actions": 2, "suppressedActions": 1}


def workload(kind: str, name: str, args: list[str], owned: bool = False) -> dict[str, Any]:
    containers = [{"name": "main", "image": "docker.io/x/app:1", "command": args}]
    metadata: dict[str, Any] = {"name": name, "namespace": "apps", "uid": f"uid-{name}"}
    if owned:
        metadata["ownerReferences"] = [{"kind": "Deployment", "name": "d", "controller": True}]
    if kind == "Pod":
        return {"kind": kind, "metadata": metadata, "spec": {"containers": containers}}
    return {
        "kind": kind,
        "metadata": metadata,
        "spec": {"template": {"spec": {"containers": containers}}},
    }


def test_a_scan_records_matching_top_level_objects_as_audit_detections() -> None:
    policy = compile_policy(MinerPolicy.model_validate({"metadata": {"name": "default"}}))
    found = scanning.scan_object(workload("Deployment", "coin", MINER), policy, {}, 0.0)
    assert len(found) == 1
    detection = found[0]
    assert detection.spec.mode == "Audit"
    assert (detection.spec.object_kind, detection.spec.pod_name, detection.spec.container) == (
        "Deployment",
        "coin",
        "main",
    )
    assert detection.metadata.labels == {marks.SCAN: "default"}
    assert (
        detection.metadata.name
        == scanning.scan_object(workload("Deployment", "coin", MINER), policy, {}, 9.0)[
            0
        ].metadata.name
    )
    assert scanning.scan_object(workload("Deployment", "clean", ["nginx"]), policy, {}, 0.0) == []
    assert scanning.scan_object({"kind": "Service", "metadata": {}}, policy, {}, 0.0) == []
    assert not scanning.is_top_level(workload("ReplicaSet", "rs", MINER, owned=True))


def test_only_a_live_peer_with_a_higher_priority_makes_us_stand_by() -> None:
    now = 1_800_000_000.0
    seen = format_time(now - 10)
    assert peers.active({"me": {"priority": 1, "lastseen": seen}}, "me", 1, now)
    assert not peers.active(
        {"other": {"priority": 5, "lastseen": seen, "lifetime": 60}}, "me", 1, now
    )
    assert peers.active(
        {"other": {"priority": 5, "lastseen": format_time(now - 120), "lifetime": 60}}, "me", 1, now
    )
    assert peers.active({"other": {"priority": 1, "lastseen": seen}}, "me", 1, now)


def test_the_policy_book_keeps_the_last_good_generation() -> None:
    book = PolicyBook()
    good = book.update(
        {"kind": "MinerPolicy", "metadata": {"name": "p", "generation": 1}, "spec": {}}
    )
    assert good.compiled is not None
    assert good.error is None
    bad = book.update(
        {
            "kind": "MinerPolicy",
            "metadata": {"name": "p", "generation": 2},
            "spec": {"signatures": {"argumentPatterns": ["("]}},
        }
    )
    assert bad.compiled is good.compiled
    assert bad.error is not None
    assert bad.error.startswith("spec.signatures.argumentPatterns[0]")
    assert book.invalid() == 1
    book.remove("p")
    assert book.names() == []


def test_settings_come_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("MINERGUARD_OPERATOR_PEERING_NAME", "mg")
    monkeypatch.setenv("MINERGUARD_OPERATOR_NAMESPACES", '["a","b"]')
    settings = OperatorSettings()
    assert (settings.peering_name, settings.namespaces) == ("mg", ["a", "b"])

"""Dedup keys, folding, and TTL sweeps on records built from raw bodies."""

from __future__ import annotations

from typing import Any

from minerguard_operator.decide import records, retention
from minerguard_operator.decide.dedup import DedupIndex, Fold
from minerguard_operator.decide.records import DedupKey

KEY = DedupKey("apps", "p1", "main", "pool-connection", mode="Enforce", policy="default")


def body(name: str = "d1", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "apps",
            "creationTimestamp": "2026-11-23T07:00:00Z",
        },
        "spec": {
            "podName": "p1",
            "container": "main",
            "policy": "default",
            "reasons": [
                {"signal": "cpu-saturation", "weight": 0.4},
                {"signal": "pool-connection", "weight": 1.0},
            ],
        },
        "status": status,
    }


def test_a_record_reads_the_key_from_the_strongest_reason() -> None:
    record = records.record(body(phase="Acted", actionsTaken=["Alert", "DeletePod: grace 0s"]))
    assert record.key == KEY
    assert record.ref == "apps/d1"
    assert record.processed
    assert record.destructive
    assert record.created == 1795417200.0


def test_the_key_holds_what_decides_the_response() -> None:
    enforce = records.record(body())
    for change in (
        {"layer": "Admission"},
        {"mode": "Audit"},
        {"policy": "other"},
        {"actionsRequested": ["Warn"]},
        {"podUID": "another-pod"},
        {"objectKind": "Deployment"},
    ):
        weaker = body()
        weaker["spec"].update(change)
        assert records.record(weaker).key != enforce.key, change
    same = body()
    same["spec"]["actionsRequested"] = ["Alert", "Alert"]
    again = body()
    again["spec"]["actionsRequested"] = ["Alert"]
    assert records.record(same).key == records.record(again).key


def test_broken_bodies_still_make_records() -> None:
    record = records.record({"metadata": {"name": "x"}, "spec": "nonsense", "status": None})
    assert (record.namespace, record.key, record.policy, record.processed) == (
        "default",
        None,
        None,
        False,
    )
    assert records.top_reason([{"signal": 3}, "x"]) is None


def test_repeats_within_the_window_fold_into_the_first() -> None:
    index = DedupIndex()
    assert index.claim(KEY, "apps/a", 100.0, 60) is None
    assert index.claim(KEY, "apps/b", 130.0, 60) == Fold("apps/a", 2)
    assert index.claim(KEY, "apps/b", 130.0, 60) == Fold("apps/a", 2)  # retried: counted once
    assert index.claim(KEY, "apps/c", 200.0, 60) is None  # outside the window: a new original
    assert index.claim(KEY, "apps/d", 210.0, 60) == Fold("apps/c", 2)


def test_the_original_itself_is_never_folded_and_forgetting_frees_the_key() -> None:
    index = DedupIndex()
    index.claim(KEY, "apps/a", 100.0, 60)
    assert index.claim(KEY, "apps/a", 101.0, 60) is None
    index.forget(KEY, "apps/a")
    assert index.claim(KEY, "apps/b", 102.0, 60) is None


def test_observed_originals_keep_the_highest_count() -> None:
    index = DedupIndex()
    index.observe(KEY, "apps/a", 100.0, 5)
    index.observe(KEY, "apps/a", 100.0, 3)
    assert index.claim(KEY, "apps/b", 110.0, 60) == Fold("apps/a", 6)


def test_sweep_returns_expired_detections_oldest_first() -> None:
    old = records.record(body("old"))
    older = records.record(
        {
            **body("older"),
            "metadata": {
                "name": "older",
                "namespace": "apps",
                "creationTimestamp": "2026-11-22T07:00:00Z",
            },
        }
    )
    undated = records.record({"metadata": {"name": "undated"}})
    now = old.created + 3600  # type: ignore[operator]
    assert retention.sweep([old, older, undated], 3600, now) == ["apps/older", "apps/old"]
    assert retention.sweep([old], 3601, now) == []

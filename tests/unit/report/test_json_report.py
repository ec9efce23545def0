"""The JSON report: the record as the API holds it, plus the computed timeline."""

from __future__ import annotations

import json

from minerguard.api.detection import MinerDetection
from minerguard.report import json_report
from tests.unit.report import cases


def test_the_record_round_trips_and_the_timeline_is_computed_in_order() -> None:
    detection = cases.detection(cases.full_investigation())
    out = json.loads(json_report.render(detection))
    assert MinerDetection.model_validate(out["detection"]) == detection
    assert out["detection"]["status"]["investigation"]["image"]["history"][2]["suspect"] is True
    assert "createdBy" in out["detection"]["status"]["investigation"]["image"]["history"][2]
    assert out["investigated"] is True
    kinds = [entry["kind"] for entry in out["timeline"]]
    assert kinds[0] == "ImageBuilt"
    assert kinds[-2:] == ["Action", "Action"]
    assert out["timeline"][3] == {
        "time": cases.EXEC,
        "kind": "ExecSession",
        "detail": "kubectl exec sh",
        "actor": "alice",
        "source": "investigation",
    }
    assert out["timelineCut"] == 0


def test_a_detection_without_an_investigation_says_so_in_the_json() -> None:
    out = json.loads(json_report.render(cases.detection(None)))
    assert out["investigated"] is False
    assert "investigation" not in out["detection"]["status"]
    assert out["notes"] == [
        "The operator has not investigated it yet: status.investigation is empty."
    ]


def test_hostile_strings_survive_exactly_and_the_output_is_plain_ascii() -> None:
    document = cases.hostile_document(cases.full_investigation())
    out_text = json_report.render(MinerDetection.model_validate(document))
    assert out_text.isascii()
    out = json.loads(out_text)
    assert out["detection"]["spec"]["evidence"]["commandLine"] == cases.HOSTILE

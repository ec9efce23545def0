"""Layers 2-4 in a real cluster: a miner exec'd after admission is caught and stopped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e import cluster
from tests.support import wait_for

pytestmark = pytest.mark.e2e


@pytest.mark.case("runtime-exec-later")
def test_a_miner_exec_later_is_detected_its_pod_deleted_and_its_deployment_stopped(
    case: cluster.Case,
) -> None:
    case.create("deployment-good.yaml")
    case.create("deployment-bad.yaml")
    worker = wait_for(
        lambda: case.pods("worker"), 180, what="the benign worker to run", interval=cluster.POLL
    )
    sleeper = wait_for(
        lambda: case.pods("sleeper"), 180, what="the sleeper to start", interval=cluster.POLL
    )
    worker_uid = worker[0].metadata.uid
    sleeper_name = sleeper[0].metadata.name

    # The agent reports the exec (or the behaviour) of the miner.
    detections = wait_for(
        lambda: [
            d
            for d in case.detections()
            if d["spec"].get("podName") == sleeper_name
            and d["spec"].get("layer") in {"Exec", "Behaviour", "Network"}
        ],
        180,
        what="a runtime MinerDetection for the sleeper",
        interval=cluster.POLL,
    )
    spec = detections[0]["spec"]
    assert spec["policy"] == "e2e-runtime-exec-later"
    assert spec["container"] == "app"
    assert "xmrig" in spec.get("evidence", {}).get("commandLine", "")

    # The operator deletes the pod and stops the Deployment from recreating it.
    wait_for(
        lambda: case.deployment("sleeper").spec.replicas == 0,
        120,
        what="the Deployment to be scaled to 0",
        interval=cluster.POLL,
    )
    wait_for(
        lambda: not case.pods("sleeper"),
        120,
        what="the miner's pod to be gone",
        interval=cluster.POLL,
    )

    # `kubectl get md -A` and the Events show it.
    listed = cluster.kubectl("get", "md", "-A")
    if listed is not None:
        assert listed.returncode == 0, listed.stderr
        assert sleeper_name in listed.stdout
        assert case.namespace in listed.stdout
    everywhere = case.custom.list_cluster_custom_object(
        cluster.GROUP, cluster.VERSION, "minerdetections"
    )
    assert any(d["spec"].get("podName") == sleeper_name for d in everywhere["items"])
    about = {sleeper_name, "sleeper", detections[0]["metadata"]["name"]}
    wanted = {"MinerDetected", "MinerPodDeleted", "MinerOwnerStopped"}  # on pod and Deployment
    wait_for(
        lambda: wanted <= {e.reason for e in case.events() if e.involved_object.name in about},
        60,
        what=f"Events {sorted(wanted)} about the miner",
        interval=cluster.POLL,
    )

    # The benign workload beside it is untouched.
    worker_now = case.pods("worker")
    assert [p.metadata.uid for p in worker_now] == [worker_uid]
    assert case.deployment("worker").spec.replicas == 1
    assert not [d for d in case.detections() if d["spec"].get("podName", "").startswith("worker")]


@pytest.mark.case("runtime-exec-later")
def test_the_operator_investigates_a_runtime_miner_and_investigate_reports_it(
    case: cluster.Case,
) -> None:
    """Issue 15 in a real cluster: the record, the printer columns and the report command."""
    case.create("deployment-bad.yaml")
    investigated = wait_for(
        lambda: [
            d
            for d in case.detections()
            if d["spec"].get("layer") in {"Exec", "Behaviour", "Network"}
            and (d.get("status") or {}).get("investigation")
        ],
        240,
        what="an investigated runtime MinerDetection",
        interval=cluster.POLL,
    )
    detection = investigated[0]
    record = detection["status"]["investigation"]
    assert record["state"] in {"Complete", "Partial"}
    # The script was written into the container after it started, by the pod's own command.
    assert record["origin"] == "Runtime"
    assert record["via"] in {"Apply", "Dropper"}
    assert detection["spec"]["evidence"].get("entry") == "Init"
    assert detection["spec"]["evidence"].get("executableOrigin") == "WrittenAfterStart"
    paths = {(p["kind"], p["name"]): p for p in record.get("restartPaths", [])}
    assert paths[("Deployment", "sleeper")]["state"] in {"Stopped", "Active"}
    assert record["summary"]
    assert record["timeline"]

    name = f"{case.namespace}/{detection['metadata']['name']}"
    listed = cluster.kubectl("get", "md", "-n", case.namespace)
    if listed is not None:
        assert listed.returncode == 0, listed.stderr
        assert "ORIGIN" in listed.stdout
        assert "Runtime" in listed.stdout
    report = subprocess.run(
        [sys.executable, "-m", "minerguard", "investigate", name, "--output", "text"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    assert "sleeper" in report.stdout

"""operator/main.py as kopf and ``minerguard operator`` run it: by path, with flags, metrics."""

from __future__ import annotations

import os
import socket
import urllib.request
from typing import Any

import pytest
from kopf.testing import KopfRunner

from tests.integration.operator.harness import (
    OPERATOR_MAIN,
    Cluster,
    operator_module,
    running,
    wait_for,
)
from tests.kube_emulator import EmulatorThread

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_flags_become_settings() -> None:
    module = operator_module()
    settings = module.parse_args(
        [
            "-n",
            "apps",
            "-n",
            "web",
            "--peering",
            "mg",
            "--priority",
            "100",
            "--kube-server",
            "http://x",
            "--metrics-port",
            "9",
        ]
    )
    assert settings.namespaces == ["apps", "web"]
    assert (settings.peering_name, settings.priority, settings.metrics_port) == ("mg", 100, 9)
    kwargs = module.operator_kwargs(module.build_runtime(settings))
    assert kwargs["standalone"] is False
    assert kwargs["clusterwide"] is False
    assert kwargs["peering_name"] == "mg"
    assert module.parse_args(["--all-namespaces", "--standalone"]).namespaces == []


def test_kopf_runs_the_handler_file_by_path(
    kube: EmulatorThread, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINERGUARD_OPERATOR_KUBE_SERVER", kube.url)
    monkeypatch.setenv("MINERGUARD_OPERATOR_HOUSEKEEPING_SECONDS", "0.5")
    cluster.policy(actions={"runtime": ["DeletePod"]})
    cluster.pod("p1")
    runner: Any = KopfRunner(["run", "-A", "--standalone", str(OPERATOR_MAIN)], timeout=30)
    with runner:
        cluster.detection("d1", "p1")
        status = cluster.settled("d1")
    assert runner.exception is None
    assert runner.exit_code == 0
    assert status["phase"] == "Acted"
    assert not cluster.exists("Pod", "p1")
    assert os.environ["MINERGUARD_OPERATOR_KUBE_SERVER"] == kube.url


def test_metrics_are_served(kube: EmulatorThread, cluster: Cluster) -> None:
    port = free_port()
    cluster.policy(actions={"runtime": ["DeletePod"]})
    cluster.pod("p1")
    with running(kube.url, metrics_port=port, metrics_address="127.0.0.1"):
        cluster.detection("d1", "p1")
        cluster.settled("d1")
        text = wait_for(
            lambda: (
                "DeletePod"
                in (
                    body := urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                    .read()
                    .decode()
                )
                and body
            ),
            what="metrics",
        )
    assert 'minerguard_operator_detections_total{phase="Acted"} 1.0' in text
    assert 'minerguard_operator_actions_total{action="DeletePod"} 1.0' in text
    assert "minerguard_operator_enforcement_seconds_bucket" in text

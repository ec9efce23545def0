"""The operator as ``minerguard operator`` and ``kopf run -m`` start it: by name, flags, metrics.

The subprocesses run isolated (``python -I``, from a directory outside the checkout): neither
the working directory nor ``PYTHONPATH`` is on ``sys.path``, so they find only what is installed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow

HANDLERS = "minerguard_operator.handlers"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


def test_minerguard_operator_imports_the_installed_package_by_name(tmp_path: Path) -> None:
    minerguard = Path(sys.executable).with_name("minerguard")
    result = subprocess.run(
        [str(minerguard), "operator", "--help"],
        cwd=tmp_path,
        env=isolated_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: minerguard operator")
    assert "--peering" in result.stdout
    assert "--kube-server" in result.stdout


def test_kopf_imports_the_handlers_by_name_in_a_process_of_its_own(
    kube: EmulatorThread, cluster: Cluster, tmp_path: Path
) -> None:
    cluster.policy(actions={"runtime": ["DeletePod"]})
    cluster.pod("p1")
    env = isolated_env(
        MINERGUARD_OPERATOR_KUBE_SERVER=kube.url, MINERGUARD_OPERATOR_LOG_FORMAT="plain"
    )
    command = [sys.executable, "-I", "-m", "kopf", "run", "-A", "--standalone", "-m", HANDLERS]
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        cluster.detection("d1", "p1")
        status = cluster.settled("d1", timeout=30)
    except AssertionError:
        print(log.read_text(errors="replace")[-6000:])
        raise
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    assert status["phase"] == "Acted"
    assert not cluster.exists("Pod", "p1")
    assert process.returncode == 0, log.read_text(errors="replace")[-6000:]


def test_kopf_runs_the_handlers_module_by_name(
    kube: EmulatorThread, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINERGUARD_OPERATOR_KUBE_SERVER", kube.url)
    monkeypatch.setenv("MINERGUARD_OPERATOR_HOUSEKEEPING_SECONDS", "0.5")
    cluster.policy(actions={"runtime": ["DeletePod"]})
    cluster.pod("p1")
    runner: Any = KopfRunner(["run", "-A", "--standalone", "-m", HANDLERS], timeout=30)
    with runner:
        cluster.detection("d1", "p1")
        status = cluster.settled("d1")
    assert runner.exception is None
    assert runner.exit_code == 0
    assert status["phase"] == "Acted"
    assert not cluster.exists("Pod", "p1")


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

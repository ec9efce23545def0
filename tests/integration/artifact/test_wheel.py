"""The wheel, installed (not editable) into a fresh virtualenv: every command starts and works.

Each command runs from the virtualenv with its working folder outside the checkout, so a module
missing from the wheel, or a file looked up next to the checkout, fails here as it fails a user.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.integration.artifact import build
from tests.integration.artifact.installed import Virtualenv, flag_for_no_cluster, showing
from tests.integration.artifact.scenes import MINER_ARGS, MINER_POD, WEB_POD, ready
from tests.integration.operator.harness import Cluster
from tests.integration.webhook import certs
from tests.integration.webhook.oci import free_port
from tests.integration.webhook.reviews import review
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = [pytest.mark.artifact, pytest.mark.slow, pytest.mark.timeout(300)]

COMPONENTS = ("minerguard", "webhook", "node_agent", "minerguard_operator")


def test_the_wheel_ships_every_component_and_no_tests(wheelhouse: Path) -> None:
    names = zipfile.ZipFile(build.project_wheel(wheelhouse)).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert set(COMPONENTS) <= top
    assert "tests" not in top
    assert [n for n in names if Path(n).name.startswith("test_") or n.endswith("conftest.py")] == []
    assert "minerguard/signatures/data/builtin.yaml" in names
    assert {f"{c}/py.typed" for c in COMPONENTS} <= set(names)


def test_every_module_comes_from_the_virtualenv_not_the_checkout(venv: Virtualenv) -> None:
    probe = (
        "import importlib, json, sys\n"
        f"names = {[*COMPONENTS, 'minerguard_operator.handlers', 'webhook.cli']}\n"
        "files = {n: importlib.import_module(n).__file__ for n in names}\n"
        "print(json.dumps({'files': files, 'path': sys.path}))"
    )
    done = venv.run("python", "-c", probe)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    for name, file in found["files"].items():
        assert Path(file).is_relative_to(venv.root / "lib"), f"{name} from {file}"
    assert not [p for p in found["path"] if p and Path(p).is_relative_to(build.REPO)]
    version = tomllib.loads((build.REPO / "pyproject.toml").read_text())["project"]["version"]
    assert venv.run("minerguard", "--version").stdout.strip() == version


def test_scan_fails_a_miner_manifest_and_passes_a_benign_one(venv: Virtualenv) -> None:
    miner = venv.workdir / "miner.yaml"
    miner.write_text(json.dumps(MINER_POD))
    web = venv.workdir / "web.yaml"
    web.write_text(json.dumps(WEB_POD))

    denied = venv.run("minerguard", "scan", "--output", "json", miner)
    allowed = venv.run("minerguard", "scan", web)

    assert denied.returncode == 1, denied.stderr
    assert "stratum+tcp://" in denied.stdout
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_the_webhook_denies_a_miner_pod_over_tls(venv: Virtualenv, tmp_path: Path) -> None:
    ca = certs.authority()
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    certs.serving(ca, cert, key)
    port = free_port()
    args = ("--host", "127.0.0.1", "--port", str(port), "--tls-cert", cert, "--tls-key", key)
    with (
        venv.started("minerguard", "webhook", *args) as server,
        showing(server.output),
        httpx.Client(
            base_url=f"https://127.0.0.1:{port}",
            verify=ssl.create_default_context(cadata=ca.pem.decode()),
        ) as client,
    ):
        wait_for(lambda: server.alive() and ready(client), 30, what="the webhook's /readyz")
        miner = client.post("/validate", json=review(MINER_POD)).json()["response"]
        web = client.post("/validate", json=review(WEB_POD)).json()["response"]
    assert miner["allowed"] is False
    assert "pool-url-loopback" in miner["status"]["message"]
    assert web["allowed"] is True


@pytest.mark.parametrize(
    "command",
    [
        ["minerguard", "operator", "--standalone", "--kube-server", "{url}"],
        ["kopf", "run", "--standalone", "-A", "-m", "minerguard_operator.handlers"],
    ],
    ids=["minerguard-operator", "kopf-run-m"],
)
def test_the_operator_reconciles_a_policy_and_acts_on_a_detection(
    venv: Virtualenv, kube: EmulatorThread, command: list[str]
) -> None:
    cluster = Cluster(kube.url)
    cluster.policy(actions={"runtime": ["Alert", "DeletePod"]})
    cluster.pod("p1")
    env = {
        "MINERGUARD_OPERATOR_KUBE_SERVER": kube.url,
        "MINERGUARD_OPERATOR_LOG_FORMAT": "plain",
        "MINERGUARD_OPERATOR_INVESTIGATE": "false",  # the pod's image names docker.io
    }
    argv = [part.format(url=kube.url) for part in command]
    with venv.started(*argv, env=env) as operator, showing(operator.output):
        policy = wait_for(
            lambda: operator.alive() and cluster.get_policy().get("status", {}).get("conditions"),
            30,
            what="the policy's status",
        )
        cluster.detection("d1", "p1")
        status = cluster.settled("d1", timeout=30)
    assert {c["type"]: c["status"] for c in policy}["Ready"] == "True"
    assert status["phase"] == "Acted"
    assert not cluster.exists("Pod", "p1")


def test_the_agent_reports_a_miner_like_process(venv: Virtualenv) -> None:
    no_cluster = flag_for_no_cluster(venv.run("minerguard", "agent", "--help").stdout)
    miner = subprocess.Popen([sys.executable, *MINER_ARGS], stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.2)
        done = venv.run(
            "minerguard", "agent", no_cluster, "--duration", "4", "--output", "json", timeout=60
        )
    finally:
        miner.kill()
        miner.wait(5)
    assert done.returncode == 0, done.stderr[-3000:]
    detections = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    (found,) = [d for d in detections if d["spec"]["evidence"].get("pid") == miner.pid]
    assert found["kind"] == "MinerDetection"
    assert "pool-url-loopback" in {reason["signal"] for reason in found["spec"]["reasons"]}

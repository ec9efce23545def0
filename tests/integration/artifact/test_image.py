"""The image built from the Dockerfile, run under runc as the chart runs each component.

The image is built once per run (see build.py); each component then runs in a container made
from the chart's pod template (see kubelet.py): its user, capabilities, read-only root, volumes
and limits. The kernel's view of each container's main process is checked against the chart.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from minerguard.api import meta
from tests.integration.artifact.build import Image
from tests.integration.artifact.installed import flag_for_no_cluster, showing
from tests.integration.artifact.kubelet import (
    Confinement,
    Container,
    Workload,
    capability_mask,
    image_spec,
    kubepods_path,
    pod_and_container,
    running,
    runtime_spec,
    wait_for_output,
)
from tests.integration.artifact.scenes import MINER_ARGS, MINER_POD, WEB_POD, ready
from tests.integration.operator.harness import Cluster
from tests.integration.webhook import certs
from tests.integration.webhook.oci import free_port
from tests.integration.webhook.reviews import review
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = [
    pytest.mark.artifact,
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.timeout(900),  # the first test of a run waits for the image (and maybe the base)
]

NON_ROOT = 65532

COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc", "ld", "as", "make")
INSTALLERS = ("pip", "pip3", "pip3.11")
# What the image holds, asked from inside it: tools on its PATH, pip as a module of its Python.
PROBE = f"""
import importlib.util, json, os, shutil
print(json.dumps({{
    "uid": os.getuid(),
    "gid": os.getgid(),
    "tools": [t for t in {[*COMPILERS, *INSTALLERS]} if shutil.which(t)],
    "pip": importlib.util.find_spec("pip") is not None,
    "operator": importlib.util.find_spec("minerguard_operator.handlers").origin,
    "old_operator_copy": os.path.exists("/opt/minerguard/operator"),
    "nft": shutil.which("nft"),
}}))
"""


def test_the_image_runs_as_non_root_and_holds_no_compiler_or_pip(
    image: Image, tmp_path: Path
) -> None:
    spec = image_spec(image, ["python", "-c", PROBE], cgroups_path=kubepods_path())
    done = Container(spec, tmp_path).run_to_end()
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)

    assert image.config["User"] == f"{NON_ROOT}:{NON_ROOT}"
    assert (found["uid"], found["gid"]) == (NON_ROOT, NON_ROOT)
    assert found["tools"] == []
    assert found["pip"] is False
    assert found["operator"].startswith("/opt/minerguard/lib/")
    assert found["old_operator_copy"] is False
    assert found["nft"], "the agent's network layer blocks with nft, found on its PATH"
    assert image.entrypoint == ["minerguard"]


def test_the_webhook_denies_a_miner_over_tls_with_the_charts_confinement(
    image: Image, kube: EmulatorThread, tmp_path: Path
) -> None:
    secret = tmp_path / "tls"
    secret.mkdir()
    ca = certs.authority()
    certs.serving(ca, secret / "tls.crt", secret / "tls.key")
    for key in secret.iterdir():
        key.chmod(0o644)  # a Secret volume's defaultMode
    port = free_port()
    spec = runtime_spec(
        image,
        Workload.from_chart("Deployment", "webhook"),
        extra_args=["--host=127.0.0.1", f"--port={port}", f"--kube-server={kube.url}"],
        volumes={"tls": secret},
        cgroups_path=kubepods_path(),
        host_network=True,
    )
    with (
        running(spec, tmp_path) as webhook,
        httpx.Client(
            base_url=f"https://127.0.0.1:{port}",
            verify=ssl.create_default_context(cadata=ca.pem.decode()),
            timeout=10,
        ) as client,
    ):
        wait_for_output(webhook, lambda _: ready(client), 60, "the webhook's /readyz")
        confinement = Confinement.of(webhook.pid)
        miner = client.post("/validate", json=review(MINER_POD)).json()["response"]
        web = client.post("/validate", json=review(WEB_POD)).json()["response"]
        recorded = wait_for(
            lambda: kube.objects(f"{meta.API_VERSION}/minerdetections", "apps"),
            what="the denial's MinerDetection",
        )

    assert miner["allowed"] is False
    assert "pool-url-loopback" in miner["status"]["message"]
    assert web["allowed"] is True
    assert recorded[0]["spec"]["layer"] == "Admission"
    assert confinement == Confinement(
        uid=NON_ROOT,
        gid=NON_ROOT,
        effective_capabilities=0,
        bounding_capabilities=0,
        no_new_privileges=True,
        read_only_root=True,
    )


def test_the_operator_deletes_the_pod_a_detection_names(
    image: Image, kube: EmulatorThread, tmp_path: Path
) -> None:
    cluster = Cluster(kube.url)
    cluster.policy(actions={"runtime": ["Alert", "DeletePod"]})
    cluster.pod("p1")
    health = free_port()
    spec = runtime_spec(
        image,
        Workload.from_chart("Deployment", "operator"),
        extra_args=["--standalone", f"--kube-server={kube.url}"],
        env={
            "MINERGUARD_OPERATOR_METRICS_PORT": str(free_port()),
            "MINERGUARD_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{health}/healthz",
            # The pod's image names docker.io: no registry lookup may leave the machine.
            "MINERGUARD_OPERATOR_INVESTIGATE": "false",
        },
        cgroups_path=kubepods_path(),
        host_network=True,
    )
    with running(spec, tmp_path) as operator, showing(operator.output):
        wait_for_output(
            operator,
            lambda _: cluster.get_policy().get("status", {}).get("conditions"),
            60,
            "the policy's status",
        )
        cluster.detection("d1", "p1")
        status = cluster.settled("d1", timeout=30)
        alive = httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=5).status_code
        confinement = Confinement.of(operator.pid)

    assert status["phase"] == "Acted"
    assert any("DeletePod" in str(taken) for taken in status["actionsTaken"])
    assert not cluster.exists("Pod", "p1")
    assert alive == 200
    assert (confinement.uid, confinement.effective_capabilities) == (NON_ROOT, 0)
    assert confinement.read_only_root
    assert confinement.no_new_privileges


def test_the_agent_reports_a_miner_like_process_in_another_container(
    image: Image, tmp_path: Path
) -> None:
    help_text = Container(
        image_spec(image, ["minerguard", "agent", "--help"], cgroups_path=kubepods_path()),
        tmp_path,
    ).run_to_end()
    no_cluster = flag_for_no_cluster(help_text.stdout)
    # A workload container whose process sleeps with a miner's command line.
    miner_spec = image_spec(
        image, ["python", *MINER_ARGS], cgroups_path=kubepods_path("besteffort")
    )
    workload = Workload.from_chart("DaemonSet", "agent")
    agent_spec = runtime_spec(
        image,
        workload,
        extra_args=[no_cluster, "--output=json"],
        env={"MINERGUARD_AGENT_METRICS_PORT": str(free_port())},
        cgroups_path=kubepods_path(),
    )
    with running(miner_spec, tmp_path, grace_seconds=0) as miner:  # PID 1 ignores SIGTERM
        miner_pid = miner.pid
        with running(agent_spec, tmp_path) as agent:

            def reported(output: str) -> dict[str, Any] | None:
                # Another agent on this machine (a concurrent test run) may kill it.
                assert miner.running(), "the miner's container ended before it was reported"
                return detection_of(output, miner_pid)

            found = wait_for_output(agent, reported, 60, "the miner's detection")
            confinement = Confinement.of(agent.pid)

    pod_uid, container_id = pod_and_container(miner.cgroups_path)
    assert "pool-url-loopback" in {reason["signal"] for reason in found["spec"]["reasons"]}
    assert found["spec"]["podUID"] == pod_uid
    assert found["spec"]["evidence"]["containerID"] == container_id
    assert (confinement.uid, confinement.read_only_root) == (0, True)
    named = capability_mask(*workload.security["capabilities"]["add"])  # SYS_PTRACE, KILL, ...
    assert confinement.effective_capabilities == named
    assert confinement.bounding_capabilities == named
    assert confinement.no_new_privileges


def detection_of(output: str, pid: int) -> dict[str, Any] | None:
    for line in output.splitlines():
        if line.startswith("{"):
            detection: dict[str, Any] = json.loads(line)
            if detection["spec"].get("evidence", {}).get("pid") == pid:
                return detection
    return None

"""The three components run as ``minerguard <component>`` runs them, with traffic, then scraped.

Each runner starts the real command in a subprocess against loopback servers only (the webhook
over TLS, the operator and the agent against kmock's emulator), makes the traffic that brings the
chart's labelled series into being, and returns what ``/metrics`` then serves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from minerguard.kube import client
from tests.integration.node_agent.conftest import Pod
from tests.integration.webhook import certs, oci
from tests.integration.webhook.conftest import PKI, Server
from tests.integration.webhook.reviews import container, pod, review
from tests.support import create_policy, wait_for

ROOT = Path(__file__).resolve().parents[3]
GROUP, VERSION = "minerguard.io", "v1alpha1"
POOL = "stratum+tcp://pool.supportxmr.com:3333"
NODE = "node-a"

Scrape = dict[str, list[tuple[dict[str, str], float]]]
"""Series name (``..._total``, ``..._bucket``) → (label set, value) of each series it has."""


def parse_exposition(text: str) -> Scrape:
    """The series of a Prometheus text exposition."""
    found: Scrape = {}
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def scrape_http(port: int) -> Scrape:
    """``GET http://127.0.0.1:PORT/metrics``, parsed; empty while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return parse_exposition(answer.read().decode())
    except OSError:
        return {}


class Command:
    """``python -m minerguard ARGS`` in its own session serving /metrics on `port`, logging."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], log: Path, port: int) -> None:
        self.log = log
        self.port = port
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "minerguard", *args],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_running(self) -> None:
        """Fail with the log's tail if the command has exited."""
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"exited with {self.process.returncode}:\n{tail}")

    def scrape(self) -> Scrape:
        """Its /metrics now (empty until it listens); fails if the command has exited."""
        self.check_running()
        return scrape_http(self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def _until_exported(command: Command, series: Mapping[str, str]) -> Scrape:
    """Scrape until every ``series`` name holds a sample with the given label value."""

    def probe() -> Scrape | None:
        scrape = command.scrape()
        for name, wanted in series.items():
            label, _, value = wanted.partition("=")
            if not any(labels.get(label) == value for labels, _ in scrape.get(name, [])):
                return None
        return scrape

    return wait_for(probe, 60, what=f"{dict(series)} on :{command.port}/metrics", interval=0.1)


# -- webhook -------------------------------------------------------------------------------


def webhook_after_reviews(folder: Path) -> Scrape:
    """The webhook over TLS on loopback, after an allowed and a denied AdmissionReview."""
    authority = certs.authority()
    cert, key = folder / "tls.crt", folder / "tls.key"
    certs.serving(authority, cert, key)
    server = Server(PKI(authority, cert, key, folder), [], {})
    try:
        server.wait_ready()
        benign = pod(container("nginx:1.27", command=["nginx", "-g", "daemon off;"]))
        miner = pod(container("alpine", command=["xmrig", "-o", POOL]), name="miner")
        assert server.review(review(benign))["allowed"] is True
        assert server.review(review(miner))["allowed"] is False
        answer = server.client.get("/metrics")
        assert answer.status_code == 200, answer.text
        return parse_exposition(answer.text)
    finally:
        server.stop()


# -- operator ------------------------------------------------------------------------------


def _custom(url: str) -> Any:
    return k8s.CustomObjectsApi(client.api_client(url))


def _create_pod(
    url: str,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    *,
    uid: str | None = None,
    status: Mapping[str, Any] | None = None,
) -> None:
    """A Pod as the API holds it (the emulator keeps the status given on create)."""
    metadata = {"name": name, **({"uid": uid} if uid else {})}
    body: Any = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
    }  # a plain dict: the client takes it
    if status is not None:
        body["status"] = dict(status)
    k8s.CoreV1Api(client.api_client(url)).create_namespaced_pod(namespace, body)


def _detection(url: str, name: str, pod_name: str, policy: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MinerDetection",
        "metadata": {"name": name},
        "spec": {
            "podName": pod_name,
            "container": "main",
            "layer": "Behaviour",
            "score": 2.5,
            "reasons": [{"signal": "pool-connection", "detail": "pool.example:3333", "weight": 1}],
            "policy": policy,
        },
    }
    _custom(url).create_namespaced_custom_object(GROUP, VERSION, "apps", "minerdetections", body)


def operator_after_enforcing(url: str, folder: Path) -> Scrape:
    """``minerguard operator`` acting on two detections under a policy allowing one action.

    The first detection deletes its pod (an action); the second finds the rate limit reached
    and trips the policy's circuit.
    """
    create_policy(
        _custom(url),
        "storm",
        actions={"runtime": ["Alert", "DeletePod"]},
        rateLimit={"maxActions": 1, "windowSeconds": 600},
    )
    for name in ("p0", "p1"):
        _create_pod(url, "apps", name, {"containers": [{"name": "main", "image": "app:1"}]})
    port = oci.free_port()
    args = ["operator", "-A", "--standalone", "--kube-server", url, "--metrics-port", str(port)]
    env = {
        "MINERGUARD_OPERATOR_METRICS_ADDRESS": "127.0.0.1",
        "MINERGUARD_OPERATOR_HOUSEKEEPING_SECONDS": "0.5",
        "MINERGUARD_OPERATOR_LOG_FORMAT": "plain",
    }
    command = Command(args, env, folder / "operator.log", port)
    try:
        wait_for(command.scrape, 30, what="the operator's /metrics", interval=0.1)
        _detection(url, "d0", "p0", "storm")
        _detection(url, "d1", "p1", "storm")
        return _until_exported(
            command,
            {
                "minerguard_operator_actions_total": "action=DeletePod",
                "minerguard_operator_circuit_trips_total": "policy=storm",
            },
        )
    finally:
        command.stop()


# -- agent ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _pod(url: str, namespace: str, name: str) -> Iterator[Pod]:
    """A kubelet-shaped pod cgroup on this machine and the Pod object naming it on NODE."""
    made = Pod()
    status = {
        "name": "main",
        "image": "app:1.0",
        "imageID": "registry.local/app@sha256:" + "b" * 64,
        "containerID": f"containerd://{made.container_id}",
        "ready": True,
        "restartCount": 0,
    }
    try:
        _create_pod(
            url,
            namespace,
            name,
            {"nodeName": NODE, "containers": [{"name": "main", "image": "app:1.0"}]},
            uid=made.uid,
            status={"containerStatuses": [status]},
        )
        yield made
    finally:
        made.cleanup()


def agent_after_a_detection(url: str, folder: Path) -> Scrape:
    """``minerguard agent`` in-cluster, after it judged a renamed miner in a pod on its node."""
    port = oci.free_port()
    env = {
        "MINERGUARD_AGENT_NODE_NAME": NODE,
        "MINERGUARD_AGENT_NAMESPACE": "minerguard",
        "MINERGUARD_AGENT_POD_NAME": "agent-xyz",
        "MINERGUARD_AGENT_KUBE_SERVER": url,
        "MINERGUARD_AGENT_METRICS_PORT": str(port),
        "MINERGUARD_AGENT_METRICS_ADDRESS": "127.0.0.1",
        "MINERGUARD_AGENT_SAMPLE_INTERVAL": "0.5",
        "MINERGUARD_AGENT_RESCAN_INTERVAL": "1",
        "MINERGUARD_AGENT_DISCOVER_EVERY": "1",
        "MINERGUARD_AGENT_STATUS_INTERVAL": "3600",
    }
    miner = folder / "xmrig"
    shutil.copy(Path(sys.executable).resolve(), miner)
    with _pod(url, "apps", "web-5d8f-abcde") as target:
        command = Command(["agent"], env, folder / "agent.log", port)
        try:
            wait_for(
                lambda: _known_pods(command.scrape()),
                30,
                what="the agent's pod list",
                interval=0.1,
            )
            process = target.spawn(
                [str(miner), "-c", "import time; time.sleep(3)", "-o", POOL],
                stdout=subprocess.DEVNULL,
            )
            scrape = _until_exported(command, {"minerguard_detections_total": "namespace=apps"})
            process.wait(10)
            return scrape
        finally:
            command.stop()


def _known_pods(scrape: Scrape) -> float:
    """The agent's ``minerguard_agent_pods`` gauge: pods on its node known from the API."""
    return sum(value for _, value in scrape.get("minerguard_agent_pods", []))

"""In-cluster mode end to end: kmock's emulator as the API, real processes in kubelet-shaped
cgroups for pods the test creates there, the real proc connector and the real client.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from minerguard.kube import client
from node_agent.incluster import InCluster
from node_agent.settings import AgentSettings
from tests.kube_emulator import EmulatorThread
from tests.support import create_policy, wait_for

from .conftest import Pod, StratumPool

pytestmark = [pytest.mark.root, pytest.mark.timeout(90)]
NODE = "node-a"
DETECTIONS = "minerguard.io/v1alpha1/minerdetections"
POLICY = "cluster-policy"


def register(kube: EmulatorThread, pod: Pod, namespace: str, name: str, node: str = NODE) -> None:
    """The pod object the kubelet would have seen before starting the container."""
    body: Any = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "uid": pod.uid,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{name}-5d8f",
                    "uid": "rs-1",
                    "controller": True,
                }
            ],
        },
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "app:1.0"}]},
        "status": {
            "containerStatuses": [
                {
                    "name": "main",
                    "image": "app:1.0",
                    "imageID": "registry.local/app@sha256:" + "b" * 64,
                    "containerID": f"containerd://{pod.container_id}",
                    "ready": True,
                    "restartCount": 0,
                }
            ]
        },
    }
    k8s.CoreV1Api(client.api_client(kube.url)).create_namespaced_pod(namespace, body)


def create_cluster_policy(kube: EmulatorThread, pool_port: int) -> None:
    """The policy the agent judges by, as an admin would have applied it."""
    create_policy(
        k8s.CustomObjectsApi(client.api_client(kube.url)),
        POLICY,
        signatures={"binaries": ["xmrig"], "poolPorts": [pool_port]},
        behaviour={"windowSeconds": 10},
        actions={"runtime": ["Alert"]},
    )


@contextlib.contextmanager
def incluster_agent(factory: Callable[[], Any]) -> Iterator[InCluster]:
    settings = AgentSettings(
        node_name=NODE,
        namespace="minerguard",
        pod_name="agent-xyz",
        metrics_port=0,
        metrics_address="127.0.0.1",
        sample_interval=0.5,
        rescan_interval=1.0,
        discover_every=1,
        event_source="connector",
        status_interval=3600,
    )
    agent = InCluster(settings, client_factory=factory)
    stop = threading.Event()
    agent.start(sync_timeout=10)
    wait_for(
        lambda: [p.name for p in agent.policy_set.policies] == [POLICY], what="the policy to sync"
    )
    thread = threading.Thread(target=agent.run, kwargs={"duration": 60, "stop": stop})
    thread.start()
    try:
        yield agent
    finally:
        stop.set()
        thread.join(10)
        agent.close(flush_timeout=2)


@pytest.fixture
def renamed_miner(tmp_path: Path) -> str:
    binary = tmp_path / "xmrig"
    shutil.copy(Path(sys.executable).resolve(), binary)
    return str(binary)


def miner_argv(binary: str, seconds: float, port: int) -> list[str]:
    """A renamed interpreter that sleeps, with a pool URL on its command line (never used)."""
    code = f"import time; time.sleep({seconds})"
    return [binary, "-c", code, "-o", f"stratum+tcp://127.0.0.1:{port}"]


def test_a_miner_in_a_pod_on_this_node_is_written_as_a_detection_and_an_event(
    kube: EmulatorThread, pods: list[Pod], pool: StratumPool, renamed_miner: str
) -> None:
    miner = Pod()
    pods.append(miner)
    register(kube, miner, "apps", "web-5d8f-abcde")
    create_cluster_policy(kube, pool.port)
    with incluster_agent(lambda: client.api_client(kube.url)) as agent:
        process = miner.spawn(miner_argv(renamed_miner, 3, pool.port))
        wait_for(lambda: kube.objects(DETECTIONS, "apps"), what="a detection in apps")
        process.wait(timeout=10)
        assert agent.reporter.flush(5)
        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{agent.metrics_port}/metrics", timeout=5
        ).read()
    stored = kube.objects(DETECTIONS, "apps")
    spec = stored[0]["spec"]
    assert spec["podName"] == "web-5d8f-abcde"
    assert spec["podUID"] == miner.uid
    assert spec["container"] == "main"
    assert spec["node"] == NODE
    assert spec["image"] == "app:1.0"
    assert spec["imageDigest"] == "sha256:" + "b" * 64
    assert spec["owner"]["kind"] == "ReplicaSet"
    assert spec["layer"] == "Exec"
    assert spec["policy"] == POLICY
    assert spec["actionsRequested"] == ["Alert"]
    assert spec["evidence"]["pid"] == process.pid
    assert spec["evidence"]["containerID"] == miner.container_id
    assert "miner-binary" in {r["signal"] for r in spec["reasons"]}
    events = kube.objects("v1/events", "apps")
    assert [e["reason"] for e in events] == ["MinerDetected"]
    assert events[0]["involvedObject"]["name"] == "web-5d8f-abcde"
    assert events[0]["involvedObject"]["uid"] == miner.uid
    text = metrics.decode()
    assert 'minerguard_detections_total{layer="Exec",namespace="apps",reason="miner-binary"}' in (
        text
    )
    assert "minerguard_agent_events_dropped_total" in text
    assert "minerguard_agent_rss_bytes" in text


def test_the_agent_itself_and_other_nodes_pods_are_left_alone_and_kube_system_only_alerted(
    kube: EmulatorThread, pods: list[Pod], pool: StratumPool, renamed_miner: str
) -> None:
    own, system, reported = Pod(), Pod(), Pod()
    pods.extend([own, system, reported])
    register(kube, own, "minerguard", "agent-xyz")
    register(kube, system, "kube-system", "kube-proxy-1")
    elsewhere = Pod()  # a pod the API places on another node: never cached
    pods.append(elsewhere)
    register(kube, elsewhere, "apps", "remote", node="node-b")
    register(kube, reported, "apps", "local")
    create_cluster_policy(kube, pool.port)
    with incluster_agent(lambda: client.api_client(kube.url)) as agent:
        assert agent.pod_cache.find("apps", "remote") is None
        assert agent.pod_cache.find("apps", "local") is not None
        assert own.uid in agent.ignore_pods
        procs = [p.spawn(miner_argv(renamed_miner, 2, pool.port)) for p in (own, system, reported)]
        wait_for(lambda: kube.objects(DETECTIONS, "apps"), what="a detection in apps")
        wait_for(lambda: kube.objects(DETECTIONS, "kube-system"), what="one in kube-system")
        for proc in procs:
            proc.wait(timeout=10)
        assert agent.reporter.flush(5)
    names = sorted(d["spec"]["podName"] for d in kube.objects(DETECTIONS))
    assert names == ["kube-proxy-1", "local"]
    # kube-system is excluded by the policy, and still watched (spec.systemNamespaces): an alert.
    (excluded,) = kube.objects(DETECTIONS, "kube-system")
    assert excluded["spec"]["actionsRequested"] == ["Alert"]
    assert kube.objects("v1/events", "minerguard") == []


def test_detections_made_during_an_api_outage_are_buffered_then_written(
    kube: EmulatorThread, pods: list[Pod], pool: StratumPool, renamed_miner: str
) -> None:
    miner = Pod()
    pods.append(miner)
    register(kube, miner, "apps", "batch-1")
    create_cluster_policy(kube, pool.port)
    target = {"url": kube.url}
    with incluster_agent(lambda: client.api_client(target["url"])) as agent:
        target["url"] = "http://127.0.0.1:9"  # refused: new connections fail from now on
        process = miner.spawn(miner_argv(renamed_miner, 2, pool.port))
        wait_for(lambda: agent.reporter.retried >= 2, what="two failed writes")
        assert agent.reporter.pending >= 1
        assert kube.objects(DETECTIONS) == []
        target["url"] = kube.url  # the outage ends
        assert agent.reporter.flush(15)
        process.wait(timeout=10)
    stored = kube.objects(DETECTIONS, "apps")
    assert [d["spec"]["podName"] for d in stored] == ["batch-1"]
    assert agent.reporter.dropped == 0
    assert [e["reason"] for e in kube.objects("v1/events", "apps")] == ["MinerDetected"]

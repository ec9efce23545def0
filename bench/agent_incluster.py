"""In-cluster agent CPU (fraction of one core), RSS and threads: the DaemonSet's configuration.

The agent runs as its own process in in-cluster mode (``python -m node_agent`` without
``--no-cluster``, default sampling, proc connector, /metrics served) against kmock's Kubernetes
emulator (tests/kube_emulator.py) in this process. 250 kubelet-shaped container cgroups
(``kubepods/<qos>/pod<uid>/<container-id>``, 2 containers in each of 125 pods, made by
agent_overhead.make_containers) are matched by 125 Pod objects on the agent's node (plus the
agent's own pod) and one MinerPolicy, so the pod cache attributes every cgroup as on a real
node. Measured: (a) idle for 30 s after a 10 s warm-up, with one /metrics scrape in the middle;
(b) ~1,000 processes/s started and reaped inside one pod's cgroup for 15 s.

Run as root: .venv/bin/python bench/agent_incluster.py   (about 70 s)
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_overhead import CONTROLLERS, churn, make_containers, measure, remove
from kubernetes import client as k8s

from minerguard.kube import client
from tests.kube_emulator import EmulatorThread

NODE = "bench-node"
AGENT_NAMESPACE = "minerguard"
AGENT_POD = "minerguard-agent-bench"
NAMESPACES = ("apps", "batch", "web", "data", "ci")
WARM_UP = 10.0
IDLE = 30.0
CHURN = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pod_body(name: str, uid: str | None, container_ids: list[str]) -> Any:
    """A Pod as the kubelet reports it once its containers run (shape of test_incluster_real)."""
    names = [f"c{i}" for i in range(len(container_ids))]
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"app": name.rsplit("-", 2)[0]},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": f"{name}-rs",
                "uid": f"rs-{name}",
                "controller": True,
            }
        ],
    }
    if uid is not None:
        metadata["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"nodeName": NODE, "containers": [{"name": n, "image": "app:1.0"} for n in names]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": n,
                    "image": "app:1.0",
                    "imageID": "registry.local/app@sha256:" + "b" * 64,
                    "containerID": f"containerd://{cid}",
                    "ready": True,
                    "restartCount": 0,
                }
                for n, cid in zip(names, container_ids, strict=True)
            ],
        },
    }


def populate(url: str, dirs: list[Path]) -> int:
    """Register one Pod per pod cgroup (its UID and container IDs), the namespaces, a policy."""
    api = client.api_client(url)
    core = k8s.CoreV1Api(api)
    for ns in (*NAMESPACES, AGENT_NAMESPACE):
        namespace: Any = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        core.create_namespace(namespace)
    pods: dict[str, list[str]] = {}
    for d in dirs:
        containers = pods.setdefault(d.parent.name.removeprefix("pod"), [])
        if d.name not in containers:
            containers.append(d.name)
    for i, (uid, cids) in enumerate(pods.items()):
        ns = NAMESPACES[i % len(NAMESPACES)]
        core.create_namespaced_pod(ns, pod_body(f"app{i}-5d8f-{uid[:5]}", uid, cids))
    core.create_namespaced_pod(AGENT_NAMESPACE, pod_body(AGENT_POD, None, [uuid.uuid4().hex * 2]))
    k8s.CustomObjectsApi(api).create_cluster_custom_object(
        "minerguard.io",
        "v1alpha1",
        "minerpolicies",
        {
            "apiVersion": "minerguard.io/v1alpha1",
            "kind": "MinerPolicy",
            "metadata": {"name": "cluster-policy"},
            "spec": {
                "builtinSignatures": True,
                "signatures": {"binaries": ["xmrig"], "poolPorts": [3333]},
                "actions": {"runtime": ["Alert"]},
            },
        },
    )
    return len(pods) + 1


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def gauge(text: str, name: str) -> str:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return found.group(1) if found else "?"


def stop(agent: subprocess.Popen[bytes] | None) -> None:
    if agent is not None and agent.poll() is None:
        agent.terminate()
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(timeout=5)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root")
    dirs: list[Path] = []
    agent: subprocess.Popen[bytes] | None = None
    rows: list[tuple[str, float, float, float, int]] = []
    notes: list[str] = []
    log = tempfile.NamedTemporaryFile(prefix="agent-incluster-", suffix=".log")  # noqa: SIM115
    try:
        with EmulatorThread() as kube:
            dirs = make_containers(250)
            pod_dirs = list(dirs[: len(CONTROLLERS)])
            registered = populate(kube.url, dirs)
            port = free_port()
            env = dict(
                os.environ,
                MINERGUARD_AGENT_KUBE_SERVER=kube.url,
                MINERGUARD_AGENT_NODE_NAME=NODE,
                MINERGUARD_AGENT_NAMESPACE=AGENT_NAMESPACE,
                MINERGUARD_AGENT_POD_NAME=AGENT_POD,
                MINERGUARD_AGENT_METRICS_PORT=str(port),
                MINERGUARD_AGENT_METRICS_ADDRESS="127.0.0.1",
            )
            started = time.monotonic()
            agent = subprocess.Popen(
                [sys.executable, "-m", "node_agent", "--duration", "120"],
                cwd=Path(__file__).resolve().parents[1],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                time.sleep(max(0.0, WARM_UP - (time.monotonic() - started)))
                if agent.poll() is not None:
                    raise RuntimeError(f"the agent exited ({agent.returncode}) during warm-up")
                scraped: list[str] = []

                def idle() -> None:
                    time.sleep(IDLE / 2)
                    scraped.append(scrape(port))
                    time.sleep(IDLE / 2)

                pid = agent.pid
                rows.append(
                    (
                        "250 containers (125 pods), idle, 5 s sampling",
                        *measure(pid, 0, idle),
                        threads(pid),
                    )
                )
                counted: list[int] = []
                rows.append(
                    (
                        "+ ~1000 proc/s inside a pod",
                        *measure(pid, 0, lambda: counted.append(churn(1000, CHURN, pod_dirs))),
                        threads(pid),
                    )
                )
                text = scraped[0]
                notes.append(
                    f"/metrics: {len(text)} bytes, {len(text.splitlines())} lines; "
                    f"pods known {gauge(text, 'minerguard_agent_pods')} (registered {registered}), "
                    f"containers sampled {gauge(text, 'minerguard_agent_containers')}, "
                    f"agent rss_bytes {gauge(text, 'minerguard_agent_rss_bytes')}"
                )
                notes.append(f"processes started in the churn phase: {counted} ({CHURN:.0f} s)")
            finally:
                stop(agent)  # before the emulator goes away
    finally:
        stop(agent)  # already stopped unless the emulator failed to start or stop
        remove(dirs)
        log.seek(0)
        lines = log.read().decode(errors="replace").splitlines()
        log.close()
        problems = [ln for ln in lines if " WARNING " in ln or " ERROR " in ln]
        synced = [ln.split(": ", 1)[-1] for ln in lines if "pods on node" in ln]
        notes.append(f"agent log: {synced[:1] or 'no pod-list line'}; {len(problems)} warnings")
        notes.extend(f"  {ln}" for ln in problems[:5])
    head = f"{'CPU (cores)':>12} {'RSS MiB':>8} {'peak MiB':>9} {'threads':>8}"
    print(f"{'scenario (in-cluster agent)':48} {head}")
    for name, cpu, rss, hwm, nthreads in rows:
        print(f"{name:48} {cpu:12.3f} {rss:8.1f} {hwm:9.1f} {nthreads:8d}")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()

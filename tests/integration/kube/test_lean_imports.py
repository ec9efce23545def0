"""The node agent's cluster path never loads the client's generated API classes or models.

``kubernetes.client.CoreV1Api`` alone imports some 250 model modules (about 21 MiB of RSS in
every agent on every node); minerguard.kube speaks plain JSON through ``resources.request``
instead. A fresh interpreter runs what the agent does in-cluster (pod and namespace list+watch,
MinerPolicy list+watch, MinerDetection and Event writes, an error answer) against the emulator
and reports which of those modules it loaded, so a stray import cannot bring them back.
"""

import json
import subprocess
import sys
from pathlib import Path

from minerguard.kube.resources import path
from tests.kube_emulator import EmulatorThread

ROOT = Path(__file__).resolve().parents[3]

AGENT_PATH = r"""
import json, sys, time

from minerguard.api.detection import MinerDetection
from minerguard.kube import client, errors, reporter, resources
from minerguard.kube.pods import PodCache
from minerguard.kube.policy_watch import PolicyWatch

url = sys.argv[1]


def factory():
    return client.api_client(url)


def until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


api = factory()
cache = PodCache(factory, "node-a", watch_timeout=5).start()
policy_watch = PolicyWatch(factory, watch_timeout=5).start()
assert cache.synced.wait(10) and policy_watch.synced.wait(10)

namespace = {"apiVersion": "v1", "kind": "Namespace"}
namespace["metadata"] = {"name": "apps", "labels": {"team": "a"}}
resources.request(api, "POST", resources.path("v1", "namespaces"), body=namespace)
pod = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "miner-1"},
    "spec": {"nodeName": "node-a", "containers": [{"name": "main", "image": "busybox:1"}]},
}
created = resources.read_json(
    resources.request(api, "POST", resources.path("v1", "pods", "apps"), body=pod)
)
assert cache.wait_for(created["metadata"]["uid"], 10) is not None, "the watch missed the pod"
until(lambda: cache.namespace_labels("apps") == {"team": "a"})

policy = {
    "apiVersion": "minerguard.io/v1alpha1",
    "kind": "MinerPolicy",
    "metadata": {"name": "audit"},
    "spec": {"mode": "Audit"},
}
resources.request(
    api, "POST", resources.path("minerguard.io/v1alpha1", "minerpolicies"), body=policy
)
until(lambda: [p.name for p in policy_watch.policies] == ["audit"])
try:
    resources.get_policy(api, "missing")
except errors.NotFound:
    pass
else:
    raise AssertionError("a missing policy must raise NotFound")

detection = MinerDetection.model_validate(
    {
        "metadata": {"namespace": "apps"},
        "spec": {"layer": "Exec", "score": 2.0, "podName": "miner-1", "reasons": []},
    }
)
event = resources.EventSpec(resources.ObjectRef("Pod", "miner-1", "apps"), "MinerDetected", "x")
writer = reporter.Reporter(factory)
assert writer.submit(detection, event)
assert writer.flush(10) and writer.written == 1 and writer.failed == 0
writer.close(1)
cache.stop(1)
policy_watch.stop(1)

heavy = ("kubernetes.client.api.", "kubernetes.client.models.")
print(json.dumps(sorted(name for name in sys.modules if name.startswith(heavy))))
"""


def test_the_agent_path_loads_no_generated_api_or_model(kube: EmulatorThread) -> None:
    done = subprocess.run(
        [sys.executable, "-c", AGENT_PATH, kube.url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "kubernetes.client.api.core_v1_api" not in loaded
    assert "kubernetes.client.models.v1_pod" not in loaded
    assert loaded == [], f"the agent path imported generated client modules: {loaded}"
    assert [d["spec"]["podName"] for d in kube.objects("minerguard.io/v1alpha1/minerdetections")]
    assert [e["reason"] for e in kube.objects("v1/events", "apps")] == ["MinerDetected"]


def test_paths_follow_the_api_layout() -> None:
    assert path("v1", "pods") == "/api/v1/pods"
    assert path("v1", "namespaces", name="apps") == "/api/v1/namespaces/apps"
    assert (
        path("apps/v1", "deployments", "ns", "web") == "/apis/apps/v1/namespaces/ns/deployments/web"
    )
    assert (
        path("minerguard.io/v1alpha1", "minerpolicies", name="p", subresource="status")
        == "/apis/minerguard.io/v1alpha1/minerpolicies/p/status"
    )
    assert path("v1", "pods", "a b", "x/y") == "/api/v1/namespaces/a%20b/pods/x%2Fy"

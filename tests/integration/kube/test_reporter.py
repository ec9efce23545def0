"""The reporter against kmock's emulator with the real client: writes, retries, drops."""

import socket
import time

from minerguard.api.detection import MinerDetection
from minerguard.kube import client, reporter, resources
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for


def detection(pod: str = "miner-1") -> MinerDetection:
    return MinerDetection.model_validate(
        {
            "metadata": {"namespace": "apps"},
            "spec": {
                "layer": "Admission",
                "score": 1.5,
                "podName": pod,
                "reasons": [{"signal": "pool-url", "detail": "stratum+tcp://"}],
            },
        }
    )


def event(pod: str = "miner-1") -> resources.EventSpec:
    return resources.EventSpec(resources.ObjectRef("Pod", pod, "apps"), "MinerDetected", "found")


def test_detections_and_events_are_written(kube: EmulatorThread) -> None:
    writer = reporter.Reporter(lambda: client.api_client(kube.url))
    assert writer.submit(detection(), event())
    assert writer.flush(10)
    writer.close()
    stored = kube.objects("minerguard.io/v1alpha1/minerdetections", "apps")
    assert [d["spec"]["podName"] for d in stored] == ["miner-1"]
    assert stored[0]["metadata"]["name"].startswith("miner-1-admission-")
    events = kube.objects("v1/events", "apps")
    assert [e["reason"] for e in events] == ["MinerDetected"]
    assert writer.written == 1
    assert writer.dropped == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_api_outage_loses_nothing_and_order_is_kept() -> None:
    port = free_port()
    writer = reporter.Reporter(
        lambda: client.api_client(f"http://127.0.0.1:{port}"), max_backoff=0.2
    )
    for index in range(5):
        assert writer.submit(detection(f"miner-{index}"))
    wait_for(lambda: writer.retried >= 2, 5, what="two retries")
    assert writer.pending == 5
    writer.close(timeout=0.5)


def test_the_outage_ends_and_the_backlog_is_written(kube: EmulatorThread) -> None:
    target = {"url": "http://127.0.0.1:9"}  # discard port: refused
    writer = reporter.Reporter(lambda: client.api_client(target["url"]), max_backoff=0.2)
    for index in range(3):
        writer.submit(detection(f"miner-{index}"))
    time.sleep(0.5)
    assert writer.retried >= 1
    target["url"] = kube.url  # the factory is asked again after every failed attempt
    assert writer.flush(10)
    names = sorted(
        d["spec"]["podName"] for d in kube.objects("minerguard.io/v1alpha1/minerdetections")
    )
    assert names == ["miner-0", "miner-1", "miner-2"]


def test_a_full_queue_drops_and_counts(kube: EmulatorThread) -> None:
    writer = reporter.Reporter(lambda: client.api_client("http://127.0.0.1:9"), capacity=2)
    accepted = [writer.submit(detection(f"m-{i}")) for i in range(5)]
    assert accepted.count(True) <= 3  # the worker may have taken one off the queue already
    assert writer.dropped == accepted.count(False) >= 2
    writer.close(timeout=0.2)

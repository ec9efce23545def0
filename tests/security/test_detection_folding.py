"""Attack: an alert-only record posted first swallows the agent's Enforce detection.

Duplicates used to fold by namespace, pod, container and top signal only. Whoever could write a
weaker record about a pod (an admission Warn, a background-scan Audit record, a forged review's
record) before the agent's Enforce detection of the same pod got the Enforce detection folded
into it and deleted, and nothing was done; re-posting inside every dedup window kept a miner
alive for good. These run the real operator (kopf, the real client) against the kmock emulator.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.operator.harness import Cluster, running
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(kube: EmulatorThread) -> Iterator[Cluster]:
    """The real client against a fresh emulator."""
    helper = Cluster(kube.url)
    yield helper
    helper.api.close()


DELETE = {"runtime": ["Alert", "DeletePod"], "podDeletionGraceSeconds": 0}
WINDOW = {"dedupWindowSeconds": 600}

WEAKER: dict[str, dict[str, Any]] = {
    "admission-warn": {"layer": "Admission", "actionsRequested": ["Warn"]},
    "background-scan-audit": {
        "layer": "Admission",
        "mode": "Audit",
        "metadata": {"labels": {"minerguard.io/scan": "default"}},
    },
    "forged-review": {
        "layer": "Admission",
        "requestingUser": "alice@corp.example",
        "actionsRequested": ["Deny"],
    },
    "audit-runtime-claim": {"layer": "Behaviour", "mode": "Audit"},
}


@pytest.mark.parametrize("weaker", sorted(WEAKER))
def test_an_alert_only_record_posted_first_does_not_swallow_an_enforce_detection(
    kube: EmulatorThread, cluster: Cluster, weaker: str
) -> None:
    cluster.policy(actions=DELETE, retention=WINDOW)
    pod = cluster.pod("miner-0")
    uid = pod["metadata"]["uid"]
    with running(kube.url):
        cluster.detection("weak", "miner-0", podUID=uid, **WEAKER[weaker])
        assert cluster.settled("weak")["phase"] == "Alerted"
        cluster.detection("agent", "miner-0", podUID=uid)
        status = cluster.settled("agent")
    assert status["phase"] == "Acted", status
    assert "DeletePod: grace 0s" in status["actionsTaken"]
    assert not cluster.exists("Pod", "miner-0")
    assert cluster.detection_status("weak").get("occurrences", 1) == 1


def test_reposting_weaker_records_in_every_window_never_keeps_a_miner_alive(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions=DELETE, retention={"dedupWindowSeconds": 2})
    pod = cluster.pod("miner-0")
    uid = pod["metadata"]["uid"]
    with running(kube.url):
        for round_ in range(2):  # the attacker keeps a fresh weaker original in each window
            if round_:
                time.sleep(3.5)  # past the 2 s window at creationTimestamp's 1 s resolution
            cluster.detection(f"weak-{round_}", "miner-0", podUID=uid, **WEAKER["forged-review"])
            cluster.settled(f"weak-{round_}")
        cluster.detection("agent", "miner-0", podUID=uid)
        status = cluster.settled("agent")
        wait_for(lambda: not cluster.exists("Pod", "miner-0"), what="the miner deleted")
    assert status["phase"] == "Acted", status


def test_enforce_repeats_of_the_same_response_still_fold(
    kube: EmulatorThread, cluster: Cluster
) -> None:
    cluster.policy(actions={"runtime": ["Alert"]}, retention=WINDOW)
    pod = cluster.pod("miner-0")
    uid = pod["metadata"]["uid"]
    with running(kube.url):
        cluster.detection("first", "miner-0", podUID=uid)
        cluster.settled("first")
        cluster.detection("again", "miner-0", podUID=uid)
        wait_for(lambda: cluster.get_detection("again") is None, what="folded")
        wait_for(
            lambda: cluster.detection_status("first").get("occurrences") == 2, what="occurrences"
        )

"""Two operator replicas peered the way the chart runs them: one acts, the other stands by.

Both replicas are the real operator (minerguard_operator, real kopf) with a peering name and
different priorities, meeting in a ClusterKopfPeering object on the emulator, whose CRD is the
chart's own (``charts/minerguard/files/kopf/peering-crds.yaml``), created through the API as
``helm install`` does. Failover is tested twice: after a clean stop (kopf removes its own record
on exit) and after SIGKILL of a replica run as a process by ``kopf run`` (its record stays until
its lifetime, shortened for the test by ``peering_lifetime.py``, runs out).
"""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.integration.operator.harness import Cluster, OperatorThread, settings_for
from tests.kube_emulator import EmulatorThread
from tests.support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

PEERING = "minerguard"
ROOT = Path(__file__).resolve().parents[3]
PEERING_CRD = ROOT / "charts/minerguard/files/kopf/peering-crds.yaml"
LIFETIME = "tests.integration.operator.peering_lifetime"
PEERINGS = ("kopf.dev", "v1", "clusterkopfpeerings")
ACTIVE, STANDBY = 200, 100
PAUSING = "Pausing operations in favour of"  # kopf._core.engines.peering
RESUMING = "Resuming operations after the pause"


def install_peering(cluster: Cluster) -> None:
    """The chart's peering CRD and its ClusterKopfPeering object (kopf creates neither)."""
    crds = client.ApiextensionsV1Api(cluster.api)
    for crd in yaml.safe_load_all(PEERING_CRD.read_text()):
        if crd:
            crds.create_custom_resource_definition(crd)
    body = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": PEERING},
    }
    cluster.custom.create_cluster_custom_object(*PEERINGS, body)


def peers(cluster: Cluster) -> dict[str, Any]:
    """The peering object's status: ``{identity: {priority, lifetime, lastseen}}``."""
    found = cluster.custom.get_cluster_custom_object(*PEERINGS, PEERING)
    return dict(found.get("status") or {})


def handled(replica: OperatorThread) -> float:
    """Detections this replica's own handlers processed (its own metrics registry)."""
    total = 0.0
    for metric in replica.runtime.state.metrics.registry.collect():
        if metric.name == "minerguard_operator_detections":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def logged(caplog: pytest.LogCaptureFixture, replica: OperatorThread, text: str) -> list[str]:
    """Messages logged on this replica's own thread (its kopf event loop) containing ``text``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.thread == replica.thread.ident and text in r.getMessage()
    ]


@pytest.fixture
def replicas() -> Iterator[ExitStack]:
    """Stops every replica a test started, whatever happened."""
    with ExitStack() as stack:
        yield stack


def start(replicas: ExitStack, url: str, priority: int) -> OperatorThread:
    settings = settings_for(url, standalone=False, peering_name=PEERING, priority=priority)
    replica = OperatorThread(settings)
    replicas.callback(replica.stop)
    return replica.start()


def standby_alone(
    replicas: ExitStack, cluster: Cluster, url: str, caplog: pytest.LogCaptureFixture
) -> OperatorThread:
    """The scene, and the lower-priority replica running alone (so it is seen to pause later)."""
    caplog.set_level(logging.INFO, logger="kopf")
    install_peering(cluster)
    cluster.policy(actions={"runtime": ["Alert"]})
    cluster.pod("p1")
    cluster.pod("p2")
    standby = start(replicas, url, STANDBY)
    wait_for(
        lambda: standby.runtime.identity in peers(cluster), 15, what="the standby's keep-alive"
    )
    wait_for(lambda: logged(caplog, standby, RESUMING), 15, what="the standby to run alone")
    return standby


def test_only_the_higher_priority_replica_acts_and_the_standby_takes_over(
    kube: EmulatorThread,
    cluster: Cluster,
    replicas: ExitStack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    standby = standby_alone(replicas, cluster, kube.url, caplog)
    active = start(replicas, kube.url, ACTIVE)
    wait_for(lambda: active.runtime.identity in peers(cluster), 15, what="the active's keep-alive")
    pausing = wait_for(lambda: logged(caplog, standby, PAUSING), 15, what="the standby to pause")
    assert active.runtime.identity in pausing[0]
    wait_for(lambda: logged(caplog, active, RESUMING), 15, what="the active to run")
    assert not logged(caplog, active, PAUSING)
    assert {k: v["priority"] for k, v in peers(cluster).items()} == {
        standby.runtime.identity: STANDBY,
        active.runtime.identity: ACTIVE,
    }

    cluster.detection("d1", "p1")
    first = cluster.settled("d1", timeout=15)
    wait_for(lambda: cluster.events("apps", "MinerDetected", "p1"), what="the MinerDetected event")
    assert first["phase"] == "Alerted"
    assert first["actionsTaken"] == ["Alert"]
    assert (handled(active), handled(standby)) == (1, 0)

    # Failover: the active replica stops and removes itself from the peering object on exit;
    # the standby resumes without waiting for the peer's lifetime (60 s) to run out.
    active.stop()
    gone = active.runtime.identity
    wait_for(lambda: gone not in peers(cluster), 5, what="the stopped replica's record to go")
    wait_for(lambda: logged(caplog, standby, RESUMING)[1:], 15, what="the standby to resume")
    cluster.detection("d2", "p2")
    second = cluster.settled("d2", timeout=15)
    wait_for(lambda: cluster.events("apps", "MinerDetected", "p2"), what="the second event")
    assert second["phase"] == "Alerted"
    assert second["actionsTaken"] == ["Alert"]
    assert handled(standby) == 1  # d2 only: d1 was not handled again on resuming

    assert len(cluster.events("apps", "MinerDetected", "p1")) == 1
    assert len(cluster.events("apps", "MinerDetected", "p2")) == 1
    assert cluster.detection_status("d1") == first
    assert handled(active) == 1


def test_the_standby_takes_over_from_a_killed_replica_within_its_lifetime(
    kube: EmulatorThread,
    cluster: Cluster,
    replicas: ExitStack,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """SIGKILL leaves the peer's record behind; the standby waits out its lifetime, no longer."""
    standby = standby_alone(replicas, cluster, kube.url, caplog)
    lifetime, identity = 3, "killed-replica"
    env = {
        **os.environ,
        "MINERGUARD_OPERATOR_KUBE_SERVER": kube.url,
        "MINERGUARD_OPERATOR_PEERING_NAME": PEERING,
        "MINERGUARD_OPERATOR_PRIORITY": str(ACTIVE),
        "MINERGUARD_OPERATOR_LOG_FORMAT": "plain",
        "POD_ID": identity,  # kopf's and the operator's peer identity
        "PEERING_LIFETIME": str(lifetime),
    }
    command = [sys.executable, "-m", "kopf", "run", "-A", "--peering", PEERING]
    command += ["--priority", str(ACTIVE), "-m", "minerguard_operator.handlers", "-m", LIFETIME]
    log = tmp_path / "active.log"
    with log.open("wb") as out:  # from the checkout's root: `python -m` finds tests.* there
        active = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    replicas.callback(active.wait, 10)
    replicas.callback(active.kill)
    try:
        wait_for(lambda: identity in peers(cluster), 30, what="the active's keep-alive")
        pausing = wait_for(
            lambda: logged(caplog, standby, PAUSING), 15, what="the standby to pause"
        )
        assert identity in pausing[0]
        assert peers(cluster)[identity]["lifetime"] == lifetime
        assert peers(cluster)[identity]["priority"] == ACTIVE
        cluster.detection("d1", "p1")
        first = cluster.settled("d1", timeout=15)
        wait_for(lambda: cluster.events("apps", "MinerDetected", "p1"), what="the first event")
    except AssertionError:
        print(log.read_text(errors="replace")[-6000:])  # the killed replica's own log
        raise
    assert first["actionsTaken"] == ["Alert"]
    assert handled(standby) == 0

    active.kill()
    active.wait(10)
    left = peers(cluster).get(identity)
    assert left, "no clean exit: the record stays until its lifetime runs out"
    expires = datetime.datetime.fromisoformat(left["lastseen"]) + datetime.timedelta(
        seconds=lifetime
    )
    wait_for(
        lambda: logged(caplog, standby, RESUMING)[1:], lifetime + 10, what="the standby to resume"
    )
    assert datetime.datetime.now(datetime.UTC) >= expires  # it did wait for the lifetime
    cluster.detection("d2", "p2")
    second = cluster.settled("d2", timeout=15)
    wait_for(lambda: cluster.events("apps", "MinerDetected", "p2"), what="the second event")
    assert second["phase"] == "Alerted"
    assert second["actionsTaken"] == ["Alert"]
    assert handled(standby) == 1  # d2 only
    wait_for(lambda: identity not in peers(cluster), 10, what="the dead peer to be cleaned up")
    assert len(cluster.events("apps", "MinerDetected", "p1")) == 1
    assert len(cluster.events("apps", "MinerDetected", "p2")) == 1

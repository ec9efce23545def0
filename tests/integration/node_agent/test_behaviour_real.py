"""The behaviour layer on real cgroups: hashing loops against a stub pool, benign heavy work."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from .conftest import NUMERIC, Pod, StratumPool, make_policy, miner_argv, running_agent

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(90)]

LAUNCHER = r"""
import hashlib, os, sys, time
if os.fork():
    os._exit(0)           # the parent exits at once; the child runs on, reparented
time.sleep(0.3)
end = time.monotonic() + float(sys.argv[1])
h = hashlib.sha256()
while time.monotonic() < end:
    h.update(b"x" * 64)
"""


def test_an_unthrottled_miner_without_signatures_is_found_by_behaviour_and_killed(
    pods: list[Pod], pool: StratumPool
) -> None:
    miner, benign = Pod(), Pod()
    pods.extend([miner, benign])
    with running_agent(make_policy(pool_port=pool.port, kill=True)) as running:
        started = time.monotonic()
        process = miner.spawn(miner_argv(pool.port, 20))
        benign.spawn([sys.executable, "-c", NUMERIC, "8"])
        found = running.sink.wait_for(miner, "Behaviour", timeout=15)
        latency = time.monotonic() - started
        process.wait(timeout=5)
    assert latency < 30
    signals = {r.signal for r in found.reasons}
    assert "pool-port-connection" in signals
    assert signals & {"cpu-saturated", "cpu-self-capped", "cpu-demand"}, (
        "on a loaded 2-core box it may share a core: demand (runnable time) counts it"
    )
    assert found.pid == process.pid
    assert found.actions_taken
    assert found.actions_taken[0].startswith("KillProcess: killed")
    assert process.returncode == -9
    assert pool.logins, "the simulated miner never reached the stub pool"
    assert running.sink.for_pod(benign) == [], "a numeric loop is not a miner"


def test_a_duty_cycled_miner_is_detected_across_its_off_phases(
    pods: list[Pod], pool: StratumPool
) -> None:
    pod = Pod()
    pods.append(pod)
    # 250 s on / 90 s off, scaled down 100x; window 10 s
    with running_agent(make_policy(pool_port=pool.port)) as running:
        process = pod.spawn(miner_argv(pool.port, 12, "2.5", "0.9"))
        found = running.sink.wait_for(pod, "Behaviour", timeout=14)
    assert found.pid == process.pid
    signals = {r.signal for r in found.reasons}
    assert "pool-port-connection" in signals
    assert signals & {"cpu-saturated", "cpu-self-capped", "cpu-demand"}, (
        "CPU evidence, whatever the off phases; on a loaded 2-core box it may share a core"
    )


def test_a_masquerading_fork_and_exit_launcher_is_detected_without_any_network(
    pods: list[Pod], tmp_path: Path
) -> None:
    pod = Pod()
    pods.append(pod)
    hidden = tmp_path / ".cache"
    hidden.mkdir()
    binary = hidden / "kworker"
    shutil.copy(Path(sys.executable).resolve(), binary)
    with running_agent(make_policy()) as running:
        pod.spawn([str(binary), "-c", LAUNCHER, "12"]).wait(timeout=5)
        found = running.sink.wait_for(pod, "Behaviour", timeout=12)
    signals = {r.signal for r in found.reasons}
    assert "fork-and-exit-launcher" in signals
    assert "kernel-thread-name" in signals
    assert "pool-port-connection" not in signals


def test_a_self_capped_throttled_container_doing_numeric_work_is_not_reported(
    pods: list[Pod],
) -> None:
    pod = Pod()
    pods.append(pod)
    pod.set_quota(0.3)
    with running_agent(make_policy()) as running:
        pod.spawn([sys.executable, "-c", NUMERIC, "6"])
        pod.spawn(["/bin/sh", "-c", "head -c 30000000 /dev/urandom | gzip -1 > /dev/null"])
        time.sleep(6)
    assert running.sink.for_pod(pod) == []
    assert pod.dirs["cpu"].is_dir()

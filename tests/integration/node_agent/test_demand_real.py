"""CPU demand on a deliberately oversubscribed node: real processes in real pod cgroups.

Five CPU-bound processes share this 2-core machine (with whatever else runs on it), each in
its own pod cgroup under the same one-core limit, so none gets the core it wants: four
benign ones (compression, a compile-like loop, a hashing benchmark reading files, a numeric
loop) and one unsigned miner (a hashing loop whose argv says nothing a signature knows)
speaking stratum to a stub pool on a built-in pool port in a namespace the test creates. The
default policy judges them. Today's "CPU against its limit" never fires for any of them; demand
(runnable time) does for all five, and only the combination names the miner.
"""

from __future__ import annotations

import sys
import time

import pytest

from minerguard.compiled_policy import default_policy

from .conftest import Pod, running_agent
from .workloads import BENIGN, pool_netns, visible_miner

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(120)]

RUN_SECONDS = 24.0


def test_on_an_oversubscribed_node_the_miner_is_reported_by_demand_and_no_benign_work_is(
    pods: list[Pod],
) -> None:
    with pool_netns() as ns:
        benign: dict[str, Pod] = {}
        for name, program in BENIGN.items():
            pod = Pod()
            pods.append(pod)
            pod.set_quota(1.0)
            benign[name] = pod
            pod.spawn([sys.executable, "-c", program, str(RUN_SECONDS + 10)])
        miner = Pod()
        pods.append(miner)
        miner.set_quota(1.0)
        with running_agent(
            default_policy(), sample_interval=2.0, rescan_interval=2.0, discover_every=3
        ) as running:
            started = time.monotonic()
            process = miner.spawn([*ns.prefix(), *visible_miner(RUN_SECONDS + 10)])
            found = running.sink.wait_for(miner, "Behaviour", timeout=RUN_SECONDS)
            latency = time.monotonic() - started
            time.sleep(max(RUN_SECONDS - latency, 0))  # the benign ones get the whole run
    signals = {r.signal for r in found.reasons}
    assert "pool-port-connection" in signals
    assert "cpu-demand" in signals, "runnable all the time, whatever it was given"
    assert "demand-with-pool" in signals
    assert found.pid == process.pid
    reported = {name: running.sink.for_pod(pod) for name, pod in benign.items()}
    assert reported == {name: [] for name in benign}, [
        f.summary for found in reported.values() for f in found
    ]

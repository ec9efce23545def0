"""The kill follows the policy: the miner, its children, and its re-spawned copies.

Miners fork helpers and run under watchdogs that restart them. With KillProcess the reported
process dies together with its descendants, and a copy the watchdog starts again (same
executable, same arguments, same pod) is reported at exec by the verdict behaviour already
earned, and killed there, instead of mining for another round of sampling.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node_agent import errors
from node_agent.kernel.procfs import ProcFS
from tests.support import wait_for

from .conftest import Pod, make_policy, require_tool, running_agent
from .workloads import POOL_PORT, STDIN_MINER, pool_netns

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(90)]

WITH_HELPER = r"""
import os, sys, time
if os.fork() == 0:                      # a helper child, as miners fork watchdogs
    with open(sys.argv[1], "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(30)
    os._exit(0)
""" + STDIN_MINER.format(port=POOL_PORT, seconds=20)

FORK_AND_EXIT = r"""
import os
if os.fork():
    os._exit(0)                         # the launcher exits at once; the miner runs on
""" + STDIN_MINER.format(port=POOL_PORT, seconds=20)


DROPPER = r"""
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (fork() != 0) return 0;                  /* the dropper exits at once */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    const char *login = "{\"id\":1,\"method\":\"login\",\"params\":{}}\n";
    write(s, login, strlen(login));
    time_t end = time(NULL) + atoi(argv[2]);
    volatile unsigned long h = 0;
    while (time(NULL) < end)
        for (int i = 0; i < 1000000; i++) h = h * 31 + i;
    return 0;
}
"""


def dead(proc: ProcFS, pid: int) -> bool:
    """Gone, or a zombie waiting for its (new) parent to reap it."""
    try:
        return proc.stat(pid).state in ("Z", "X")
    except errors.ProcessGone:
        return True


def test_a_killed_miner_takes_its_children_and_a_respawned_copy_is_killed_at_exec(
    pods: list[Pod], tmp_path: Path
) -> None:
    pod = Pod()
    pods.append(pod)
    helpers = tmp_path / "helpers"
    helpers.touch()
    proc = ProcFS()
    loop = f'for i in 1 2 3 4 5; do {sys.executable} -c "$MINER" {helpers}; sleep 0.3; done'
    policy = make_policy(pool_port=POOL_PORT, kill=True)
    with pool_netns() as ns, running_agent(policy, sample_interval=1.0) as running:
        watchdog = pod.spawn(
            [*ns.prefix(), "/bin/sh", "-c", loop], env={"MINER": WITH_HELPER, "PATH": "/bin"}
        )
        first = running.sink.wait_for(pod, "Behaviour", timeout=15)
        assert first.actions_taken[0].startswith("KillProcess: killed"), first.actions_taken
        assert first.pid is not None
        children = [int(p) for p in helpers.read_text().split()]
        assert children, "the miner forked its helper"
        wait_for(
            lambda: dead(proc, first.pid or 0) and all(dead(proc, c) for c in children),
            1.0,
            what="the miner and its helper dead within 1 s of the report",
            interval=0.02,
        )
        # The copy exec'd by the watchdog (and the helper it forks, found at its fork by the
        # same verdict): whichever is reported first, the copy itself is killed.
        again = running.sink.wait_for_match(
            lambda f: (
                f.pod_uid == pod.uid
                and f.layer == "Exec"
                and f.executable == first.executable
                and bool(f.actions_taken)
                and f.actions_taken[0].startswith("KillProcess: killed")
            ),
            5,
            what="the re-spawned copy reported at exec and killed",
        )
        assert watchdog.poll() is None or watchdog.returncode == 0
    signals = {r.signal: r for r in again.reasons}
    assert "earned-verdict" in signals
    assert str(first.pid) in signals["earned-verdict"].detail
    assert again.pid != first.pid


def test_fork_and_exit_keeps_the_pod_and_names_the_launcher_that_exited(
    pods: list[Pod],
) -> None:
    pod = Pod()
    pods.append(pod)
    with pool_netns() as ns, running_agent(make_policy(), sample_interval=1.0) as running:
        launcher = pod.spawn([*ns.prefix(), sys.executable, "-c", FORK_AND_EXIT])
        launcher.wait(timeout=5)
        found = running.sink.wait_for(pod, "Behaviour", timeout=15)
    assert found.pod_uid == pod.uid
    assert found.container_id == pod.container_id
    assert found.pid != launcher.pid
    signals = {r.signal: r for r in found.reasons}
    assert "pool-port-connection" in signals
    lineage = signals["fork-and-exit-launcher"].detail
    assert f"parent {launcher.pid} exited" in lineage


def test_a_dropper_that_forks_and_exits_at_once_is_caught_by_the_verdict_its_miner_earned(
    pods: list[Pod], tmp_path: Path
) -> None:
    gcc = require_tool("gcc")
    source = tmp_path / "d.c"
    source.write_text(DROPPER)
    binary = tmp_path / "dropper"
    subprocess.run([gcc, "-O1", "-o", str(binary), str(source)], check=True, timeout=60)
    pod = Pod()
    pods.append(pod)
    loop = f"for i in 1 2 3 4; do {binary} {POOL_PORT} 15; sleep 2; done"
    policy = make_policy(pool_port=POOL_PORT, kill=True)
    with pool_netns() as ns, running_agent(policy, sample_interval=1.0) as running:
        pod.spawn([*ns.prefix(), "/bin/sh", "-c", loop])
        first = running.sink.wait_for(pod, "Behaviour", timeout=15)
        assert first.actions_taken[0].startswith("KillProcess: killed"), first.actions_taken
        again = running.sink.wait_for_match(
            lambda f: (
                f.pod_uid == pod.uid
                and f.layer == "Exec"
                and bool(f.actions_taken)
                and f.actions_taken[0].startswith("KillProcess: killed")
            ),
            6,
            what="the next dropper's child reported by the earned verdict and killed",
        )
    assert "earned-verdict" in {r.signal for r in again.reasons}
    assert again.executable == str(binary)
    assert again.pid != first.pid

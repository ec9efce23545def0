"""The exec layer on the real kernel: proc connector events, real cgroups, real processes."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from node_agent.kernel.connector import ProcConnector
from node_agent.kernel.events import EventKind
from tests.support import wait_for

from .conftest import Pod, make_policy, require_root, running_agent

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]
WALLET = (
    "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3Xjr"
    "pDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
)

# rewrites its own /proc/PID/cmdline through /proc/self/mem, as setproctitle-style miners do
REWRITE = r"""
import os, time
fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
start, end = int(fields[45]), int(fields[46])
new = b"xmrig\0--donate-level=1\0-o\0stratum+tcp://127.0.0.1:3333\0"
new = new[: end - start - 1].ljust(end - start, b"\0")
time.sleep(0.5)
with open("/proc/self/mem", "r+b", buffering=0) as mem:
    mem.seek(start); mem.write(new)
time.sleep(4)
"""


def test_proc_connector_sees_fork_exec_and_exit_of_a_short_process() -> None:
    require_root("the proc connector")
    source = ProcConnector()
    try:
        import subprocess

        child = subprocess.Popen(["/bin/true"])
        child.wait(timeout=5)
        seen: set[EventKind] = set()

        def all_three() -> bool:
            seen.update(e.kind for e in source.poll(0.2) if e.pid == child.pid)
            return len(seen) == 3

        wait_for(all_three, 3, what=lambda: f"fork, exec and exit (seen: {seen})", interval=0)
        assert seen == {EventKind.FORK, EventKind.EXEC, EventKind.EXIT}
    finally:
        source.close()


def test_a_renamed_miner_in_a_pod_is_reported_within_100_ms_of_exec(
    pods: list[Pod], tmp_path: Path
) -> None:
    pod = Pod()
    pods.append(pod)
    binary = tmp_path / "xmrig"
    shutil.copy(Path(sys.executable).resolve(), binary)
    script = "import time; time.sleep(3)"
    with running_agent(make_policy()) as running:
        pod.spawn(
            [str(binary), "-c", script, "--donate-level=1", "-o", "stratum+tcp://127.0.0.1:3333"]
        )
        found = running.sink.wait_for(pod, "Exec", timeout=5)
    assert found.container_id == pod.container_id
    assert found.executable == str(binary)
    # the test pool is on loopback: that URL is pool-url-loopback, which needs the second signal
    assert {"miner-binary", "pool-url-loopback"} <= {r.signal for r in found.reasons}
    assert found.latency_s is not None
    assert found.latency_s < 0.1


def test_a_miner_with_a_plain_name_and_plain_arguments_is_known_by_its_bytes(
    pods: list[Pod], tmp_path: Path
) -> None:
    pod = Pod()
    pods.append(pod)
    binary = tmp_path / "app"  # /bin/sleep carrying a stratum client's strings, nothing else
    binary.write_bytes(Path("/bin/sleep").read_bytes() + b"\0stratum+tcp://%s\0mining.subscribe\0")
    binary.chmod(0o755)
    with running_agent(make_policy()) as running:
        pod.spawn([str(binary), "3"])
        found = running.sink.wait_for(pod, "Exec", timeout=5)
    assert found.executable == str(binary)
    # no signature in name, argv or environment: the bytes decide (tmp_path is scratch space)
    assert {r.signal for r in found.reasons} - {"scratch-executable", "hidden-path"} == {
        "miner-content"
    }
    assert found.score >= 1.0


def test_config_file_only_and_environment_only_miners_are_reported(
    pods: list[Pod], tmp_path: Path
) -> None:
    config_pod, env_pod = Pod(), Pod()
    pods.extend([config_pod, env_pod])
    config = tmp_path / "config.json"
    config.write_text(
        '{"pools": [{"url": "stratum+tcp://127.0.0.1:3333", "user": "' + WALLET + '"}], '
        '"donate-level": 1}'
    )
    sleeper = [sys.executable, "-c", "import time; time.sleep(3)"]
    with running_agent(make_policy()) as running:
        config_pod.spawn([*sleeper, "-c", str(config)])
        env_pod.spawn(
            sleeper,
            env={"POOL_URL": "stratum+tcp://127.0.0.1:3333", "WALLET": WALLET, "PATH": "/usr/bin"},
        )
        by_config = running.sink.wait_for(
            config_pod, "Exec", timeout=5, what="a finding from the config file named by -c"
        )
        by_env = running.sink.wait_for(
            env_pod, "Exec", timeout=5, what="a finding from the environment"
        )
    assert any("file" in r.detail for r in by_config.reasons)
    assert any("env" in r.detail for r in by_env.reasons)


def test_argv_rewritten_after_exec_is_caught_by_the_rescan(pods: list[Pod]) -> None:
    pod = Pod()
    pods.append(pod)
    with running_agent(make_policy()) as running:
        pod.spawn([sys.executable, "-c", REWRITE, "x" * 80])
        found = running.sink.wait_for(pod, "Exec", timeout=6)
    assert found.command_line is not None
    assert found.command_line.startswith("xmrig")
    assert "found-by-rescan" in {r.signal for r in found.reasons}


def test_benign_commands_in_pods_are_not_reported(pods: list[Pod], tmp_path: Path) -> None:
    pod = Pod()
    pods.append(pod)
    source = tmp_path / "hello.c"
    source.write_text("int main(void) { return 0; }\n")
    with running_agent(make_policy()) as running:
        for argv in (
            ["/bin/sh", "-c", "head -c 2000000 /dev/zero | gzip -9 > /dev/null"],
            ["gcc", "-O2", "-o", str(tmp_path / "hello"), str(source)],
            ["/bin/sh", "-c", "for i in $(seq 1 100); do /bin/true; done"],
        ):
            pod.spawn(argv).wait(timeout=30)
        time.sleep(1.5)
    assert running.sink.for_pod(pod) == []

"""Looking through launchers on the real kernel: the dynamic loader, renames, hidden code.

The "miner" binary is a small C program carrying a stratum client's strings (what the content
scan knows a miner by) that only sleeps; it lives in a hidden directory. Run directly, the
exec layer reports it; run through the dynamic loader (``ld.so PROGRAM``), ``/proc/PID/exe``
is the loader, and before this the agent judged the loader's bytes and path and let it run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minerguard.compiled_policy import default_policy

from .conftest import Pod, require_tool, running_agent
from .workloads import pool_netns, stdin_miner

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(90)]

LOADER = "/lib64/ld-linux-x86-64.so.2"
PROGRAM = r"""
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
volatile const char *strings[] = {"stratum+tcp://", "mining.subscribe", "donate-level"};
int main(int argc, char **argv) {
    if (getenv("RENAME")) prctl(PR_SET_NAME, getenv("RENAME"), 0, 0, 0);
    sleep(argc > 1 ? atoi(argv[1]) : 5);
    return strings[0][0] == 0;
}
"""


@pytest.fixture
def hidden_miner(tmp_path: Path) -> Path:
    """The miner-shaped binary in a hidden directory (built with gcc)."""
    gcc = require_tool("gcc")
    if not Path(LOADER).exists():
        pytest.skip(f"no {LOADER} on this machine")
    source = tmp_path / "m.c"
    source.write_text(PROGRAM)
    hidden = tmp_path / ".cache"
    hidden.mkdir()
    binary = hidden / "worker"
    subprocess.run([gcc, "-O1", "-o", str(binary), str(source)], check=True, timeout=60)
    return binary


def test_a_miner_run_through_the_dynamic_loader_is_judged_as_the_program_it_runs(
    pods: list[Pod], hidden_miner: Path, tmp_path: Path
) -> None:
    direct, loaded = Pod(), Pod()
    pods.extend([direct, loaded])
    fifo = tmp_path / "cfg"
    os.mkfifo(fifo)
    with running_agent(default_policy()) as running:
        direct.spawn([str(hidden_miner), "4"])
        baseline = running.sink.wait_for(direct, "Exec", timeout=5)
        loaded.spawn([LOADER, str(hidden_miner), "4", "-c", str(fifo)])
        found = running.sink.wait_for(loaded, "Exec", timeout=5)
    signals = {r.signal: r for r in found.reasons}
    assert {r.signal for r in baseline.reasons} <= set(signals) | {"argv0-renamed"}
    assert "miner-content" in signals, "the program's bytes, not the loader's"
    assert "hidden-directory" in signals, "where the program lives, not the loader"
    assert "dynamic loader" in signals["launcher"].detail
    assert Path(LOADER).name in signals["launcher"].detail
    assert found.executable == str(hidden_miner)
    assert found.command_line is not None
    assert found.command_line.startswith(LOADER), "the evidence keeps what was really run"


def test_renamed_argv0_and_comm_do_not_hide_the_executable_and_are_named(
    pods: list[Pod], hidden_miner: Path
) -> None:
    pod = Pod()
    pods.append(pod)
    bash = require_tool("bash")
    with running_agent(default_policy()) as running:
        pod.spawn(
            [bash, "-c", f"exec -a nginx {hidden_miner} 4"],
            env={**os.environ, "RENAME": "sshd"},
        )
        found = running.sink.wait_for_match(
            lambda f: (
                f.pod_uid == pod.uid and f.layer == "Exec" and "worker" in (f.executable or "")
            ),
            5,
            what="an exec finding for the renamed miner",
        )
    signals = {r.signal: r for r in found.reasons}
    assert "miner-content" in signals
    assert "nginx" in signals["argv0-renamed"].detail
    assert "sshd" in signals["comm-renamed"].detail


def test_an_interpreter_reading_a_miner_from_stdin_with_a_pool_connection_is_reported(
    pods: list[Pod],
) -> None:
    pod = Pod()
    pods.append(pod)
    pod.set_quota(0.5)
    with pool_netns() as ns, running_agent(default_policy(), sample_interval=2.0) as running:
        process = pod.spawn([*ns.prefix(), sys.executable, "-"], stdin=subprocess.PIPE)
        assert process.stdin is not None
        process.stdin.write(stdin_miner(20))
        process.stdin.close()
        found = running.sink.wait_for(pod, "Behaviour", timeout=15)
    signals = {r.signal: r for r in found.reasons}
    assert "stdin (pipe:" in signals["code-not-on-command-line"].detail
    assert "pool-port-connection" in signals
    assert found.pid == process.pid


def test_an_interpreter_computing_flat_out_on_code_from_stdin_is_reported_without_a_pool(
    pods: list[Pod],
) -> None:
    pod, control = Pod(), Pod()
    pods.extend([pod, control])
    program = b"import hashlib, time\nend = time.monotonic() + 20\nh = hashlib.sha256()\n"
    program += b"while time.monotonic() < end:\n    h.update(b'x' * 64)\n"
    with running_agent(default_policy(), sample_interval=2.0) as running:
        process = pod.spawn([sys.executable, "-"], stdin=subprocess.PIPE)
        assert process.stdin is not None
        process.stdin.write(program)
        process.stdin.close()
        control.spawn([sys.executable, "-c", program.decode()])  # the same code, visible
        found = running.sink.wait_for(pod, "Behaviour", timeout=20)
        time.sleep(2)
    signals = {r.signal for r in found.reasons}
    assert {"code-not-on-command-line", "pure-compute", "hidden-code-computing"} <= signals
    assert running.sink.for_pod(control) == [], "the same loop, its code on the command line"


def test_a_script_that_deletes_itself_and_computes_flat_out_is_reported(
    pods: list[Pod], tmp_path: Path
) -> None:
    pod = Pod()
    pods.append(pod)
    script = tmp_path / "job.py"
    script.write_text(
        "import hashlib, os, time\nos.unlink(__file__)\nend = time.monotonic() + 20\n"
        "h = hashlib.sha256()\nwhile time.monotonic() < end:\n    h.update(b'x' * 64)\n"
    )
    with running_agent(default_policy(), sample_interval=2.0) as running:
        pod.spawn([sys.executable, str(script)])
        found = running.sink.wait_for(pod, "Behaviour", timeout=20)
    signals = {r.signal: r for r in found.reasons}
    assert "deleted after start" in signals["code-not-on-command-line"].detail
    assert "hidden-code-computing" in signals

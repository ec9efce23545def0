import pytest

from node_agent import errors
from node_agent.kernel.procfs import Executable, ProcFS, parse_stat
from tests.unit.node_agent.conftest import POD1


def test_stat_is_parsed_even_when_comm_contains_spaces_and_parentheses(proc: ProcFS) -> None:
    stat = proc.stat(300)
    assert stat.comm == "tmux: server (1)"
    assert stat.ppid == 1
    assert stat.start_ticks == 3456
    assert stat.cpu_ticks == 20


def test_kernel_threads_are_recognised_by_their_flag_and_have_no_executable(proc: ProcFS) -> None:
    assert proc.stat(2).kernel_thread
    assert proc.exe(2) is None
    assert not proc.stat(100).kernel_thread


def test_argv_and_environment_are_split_on_nul_and_bounded(proc: ProcFS) -> None:
    assert proc.argv(100)[:2] == ("/usr/local/bin/xmrig", "-o")
    assert ("WALLET", "4AAAA") in proc.environ(100)
    assert all(name != "NOEQUALS" for name, _ in proc.environ(100))
    assert proc.argv(100, limit=8) == ("/usr/loc",)


def test_deleted_and_memfd_executables_are_recognised(proc: ProcFS) -> None:
    deleted = proc.exe(200)
    assert deleted == Executable(path="/tmp/.cache/kw", deleted=True)
    memfd = proc.exe(400)
    assert memfd is not None
    assert memfd.memfd
    assert memfd.deleted


def test_cgroup_lines_keep_v1_controllers_and_the_v2_line(proc: ProcFS) -> None:
    lines = proc.cgroups(100)
    unified = [line for line in lines if line.unified]
    assert len(unified) == 1
    assert unified[0].path.endswith(f"pod{POD1}/" + "a1" * 32)
    assert any("memory" in line.controllers for line in lines)


def test_socket_inodes_map_to_their_fds_and_other_fds_are_ignored(proc: ProcFS) -> None:
    assert proc.socket_inodes(100) == {55923: 3, 55924: 4}
    assert proc.socket_inodes(200) == {}


def test_a_process_that_is_gone_raises_process_gone(proc: ProcFS) -> None:
    with pytest.raises(errors.ProcessGone):
        proc.stat(99999)
    with pytest.raises(errors.ProcessGone):
        proc.exe(99999)


def test_status_and_boot_time_are_read(proc: ProcFS) -> None:
    assert proc.status(100)["NSpid"] == "100\t7"
    assert proc.boot_time() == 1700000000.0


def test_pids_lists_only_numeric_entries(proc: ProcFS) -> None:
    assert sorted(proc.pids()) == [2, 100, 200, 300, 400]


def test_a_truncated_stat_line_is_treated_as_a_vanished_process() -> None:
    with pytest.raises(errors.ProcessGone):
        parse_stat(5, "5 (x) R 1")

"""Looking through launchers, on strings: loader argv, maps, interpreters and hidden code."""

from __future__ import annotations

import pytest

from node_agent.judge import launchers
from node_agent.kernel.procfs import Executable

LOADER = Executable("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", deleted=False)
PYTHON = launchers.interpreter_of(Executable("/usr/bin/python3.11", deleted=False))
SH = launchers.interpreter_of(Executable("/bin/dash", deleted=False))
MAPS = """\
55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234 /work/.hidden/miner (deleted)
55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234 /work/.hidden/miner (deleted)
7f0000000000-7f0000020000 r--p 00000000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1000000000-7f1000001000 r--p 00000000 fd:01 77 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
"""


@pytest.mark.parametrize(
    "path",
    ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-musl-x86_64.so.1", "/lib/ld-linux-aarch64.so.1"],
)
def test_dynamic_loaders_are_recognised_by_name(path: str) -> None:
    assert launchers.is_loader(Executable(path, deleted=False))


def test_an_ordinary_program_is_not_a_loader() -> None:
    assert not launchers.is_loader(Executable("/usr/bin/ldd", deleted=False))


def test_the_loaders_options_are_skipped_to_find_the_program() -> None:
    argv = ("ld.so", "--library-path", "/x", "--argv0", "nginx", "--inhibit-cache", "./m", "-c")
    assert launchers.loader_program(argv) == (6, "./m")
    assert launchers.loader_program(("ld.so", "--help")) is None
    assert launchers.loader_program(("ld.so",)) is None


def test_the_program_mapping_is_found_deleted_or_not_and_never_the_loader() -> None:
    maps = launchers.parse_maps(MAPS)
    found = launchers.program_mapping(maps, ".hidden/miner", "/work", LOADER)
    assert found is not None
    assert (found.path, found.deleted, found.start) == ("/work/.hidden/miner", True, "55d0c0a00000")
    by_name = launchers.program_mapping(maps, "miner", "/elsewhere", LOADER)
    assert by_name == found


@pytest.mark.parametrize(
    ("argv", "stdin", "expected"),
    [
        (("python3", "-"), "pipe:[5]", "reads its program from stdin (pipe:[5])"),
        (("python3",), "socket:[9]", "reads its program from stdin (socket:[9])"),
        (("python3", "-u"), "/memfd:x (deleted)", "reads its program from stdin"),
        (("python3", "/dev/fd/3"), None, "reads its program from a descriptor (/dev/fd/3)"),
        (("python3", "/proc/self/fd/7"), None, "descriptor"),
        (("python3",), "/dev/pts/0", None),
        (("python3",), "/dev/null", None),
        (("python3", "-c", "print(1)"), "pipe:[5]", None),
        (("python3", "-uc", "print(1)"), "pipe:[5]", None),
        (("python3", "-m", "http.server"), "pipe:[5]", None),
        (("python3", "app.py"), "pipe:[5]", None),
        (("python3", "-W", "ignore", "app.py"), "pipe:[5]", None),
    ],
)
def test_an_interpreter_says_where_its_code_comes_from(
    argv: tuple[str, ...], stdin: str | None, expected: str | None
) -> None:
    assert PYTHON is not None
    found = launchers.hidden_code(argv, PYTHON, stdin, script_missing=False)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert expected in found


def test_a_script_deleted_after_start_is_code_not_on_the_command_line() -> None:
    assert SH is not None
    assert launchers.hidden_code(("sh", "/tmp/x.sh"), SH, None, script_missing=True) == (
        "runs script /tmp/x.sh, deleted after start"
    )
    assert launchers.hidden_code(("sh", "-c", "echo"), SH, "pipe:[1]", script_missing=True) is None
    assert launchers.hidden_code(("sh", "-s"), SH, "pipe:[1]", script_missing=False) is not None


def test_programs_that_are_not_interpreters_have_no_hidden_code_check() -> None:
    assert launchers.interpreter_of(Executable("/usr/bin/gzip", deleted=False)) is None


def test_renames_are_named_without_weight() -> None:
    exe = Executable("/opt/.x/worker", deleted=False)
    reasons = {r.signal: r for r in launchers.launcher_reasons("sshd", ("nginx",), exe, None)}
    assert set(reasons) == {"argv0-renamed", "comm-renamed"}
    assert all(r.weight == 0 for r in reasons.values())
    plain = launchers.launcher_reasons("python3.11", ("python3", "x"), PYTHON_EXE, None)
    assert plain == ()
    login = launchers.launcher_reasons("bash", ("-bash",), Executable("/bin/bash", False), None)
    assert login == ()


PYTHON_EXE = Executable("/usr/bin/python3.11", deleted=False)


def test_a_busybox_applet_is_named_as_such_not_as_a_rename() -> None:
    busybox = Executable("/bin/busybox", deleted=False)
    (reason,) = launchers.launcher_reasons("wget", ("wget", "-q", "x"), busybox, None)
    assert (reason.signal, reason.weight) == ("launcher", 0.0)
    assert "applet 'wget'" in reason.detail

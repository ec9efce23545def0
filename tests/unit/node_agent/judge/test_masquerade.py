from node_agent.judge import masquerade
from node_agent.kernel.procfs import Executable
from node_agent.records import Reason


def names(reasons: tuple[Reason, ...]) -> set[str]:
    return {r.signal for r in reasons}


def test_a_kernel_thread_name_on_a_real_executable_is_masquerading() -> None:
    found = masquerade.reasons(
        "kworker/0:1", ("[kworker/0:1]",), Executable("/usr/bin/x", False), False
    )
    assert names(found) == {"kernel-thread-name"}


def test_a_genuine_kernel_thread_is_not_masquerading() -> None:
    assert masquerade.reasons("kthreadd", (), None, True) == ()


def test_argv_rewritten_to_look_like_kswapd_is_caught_even_with_an_honest_comm() -> None:
    found = masquerade.reasons(
        "python3", ("kswapd0",), Executable("/usr/bin/python3", False), False
    )
    assert "kernel-thread-name" in names(found)


def test_deleted_scratch_and_hidden_executables_each_add_a_signal() -> None:
    found = masquerade.reasons("kw", ("kw",), Executable("/tmp/.cache/kw", True), False)
    assert names(found) == {"deleted-executable", "scratch-executable", "hidden-directory"}


def test_memfd_executables_are_flagged_once_not_also_as_deleted() -> None:
    found = masquerade.reasons("3", ("3",), Executable("/memfd:payload", True), False)
    assert names(found) == {"memfd-executable"}


def test_ordinary_binaries_raise_nothing() -> None:
    assert (
        masquerade.reasons("gzip", ("gzip", "-9"), Executable("/usr/bin/gzip", False), False) == ()
    )
    assert (
        masquerade.reasons(
            "dev", ("./.venv/bin/python",), Executable("/srv/app/bin/python", False), False
        )
        == ()
    )


def test_toolchain_dot_directories_are_not_hiding_places() -> None:
    for path in ("/root/.pyenv/versions/3.11.7/bin/python3.11", "/home/app/.local/bin/gunicorn"):
        assert masquerade.reasons("python3", ("python3",), Executable(path, False), False) == ()
    found = masquerade.reasons("x", ("x",), Executable("/var/lib/.x/x", False), False)
    assert names(found) == {"hidden-directory"}

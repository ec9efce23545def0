"""Executable content verdicts: once per file version, through a descriptor or /proc/PID/exe."""

import os
import subprocess
from pathlib import Path

from minerguard.signatures.content import builtin_scanner
from node_agent.judge.exe_content import SIGNAL, ExecutableContent
from node_agent.kernel.procfs import ProcFS

MINER = b"\x7fELF\0stratum+tcp://%s\0mining.subscribe\0"


def verdict(cache: ExecutableContent, path: Path) -> float | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        found = cache.of_fd(fd)
    finally:
        os.close(fd)
    return None if found is None else found.weight


def test_a_file_is_scanned_once_per_version(tmp_path: Path) -> None:
    cache = ExecutableContent(builtin_scanner())
    binary = tmp_path / "app"
    binary.write_bytes(MINER)
    assert verdict(cache, binary) == 1.0
    assert verdict(cache, binary) == 1.0
    assert cache.scanned == 1
    binary.write_bytes(b"\x7fELF\0nothing to see\0")  # rewritten: a new version
    assert verdict(cache, binary) is None
    assert cache.scanned == 2


def test_a_pipe_is_not_scanned() -> None:
    read, write = os.pipe()
    try:
        assert ExecutableContent(builtin_scanner()).of_fd(read) is None
    finally:
        os.close(read)
        os.close(write)


def test_a_running_process_is_read_through_proc_exe_even_after_its_file_is_deleted(
    tmp_path: Path,
) -> None:
    binary = tmp_path / "sleepy"
    binary.write_bytes(Path("/bin/sleep").read_bytes() + MINER)
    binary.chmod(0o755)
    child = subprocess.Popen([str(binary), "5"])
    try:
        binary.unlink()
        found = ExecutableContent(builtin_scanner()).of_process(ProcFS(), child.pid)
    finally:
        child.kill()
        child.wait()
    assert found is not None
    assert found.signal == SIGNAL
    assert "mining.subscribe" in found.detail

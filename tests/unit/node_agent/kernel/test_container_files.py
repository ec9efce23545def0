"""Container file reads: resolved inside the root, typed before opening, bounded, deadlined.

The attacks (symlinks to the node, FIFOs, hung filesystems) are in tests/security; these are
the everyday shapes that must keep working.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from node_agent.counters import Counters
from node_agent.kernel import container_files


def test_a_configmap_volume_layout_of_relative_symlinks_is_followed_inside_the_root(
    tmp_path: Path,
) -> None:
    # What the kubelet writes: config.json -> ..data/config.json, ..data -> ..2026_12_01_x
    volume = tmp_path / "etc" / "app"
    (volume / "..2026_12_01_x").mkdir(parents=True)
    (volume / "..2026_12_01_x" / "config.json").write_text('{"threads": 2}')
    (volume / "..data").symlink_to("..2026_12_01_x")
    (volume / "config.json").symlink_to("..data/config.json")
    found = container_files.read_in_root(str(tmp_path), "/etc/app/config.json", 1024)
    assert found == b'{"threads": 2}'


def test_an_absolute_symlink_resolves_against_the_container_root_not_the_agents(
    tmp_path: Path,
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("container")
    (tmp_path / "link").symlink_to("/etc/hostname")
    assert container_files.read_in_root(str(tmp_path), "/link", 100) == b"container"


def test_reads_stop_at_the_limit_and_a_missing_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 10_000)
    assert container_files.read_in_root(str(tmp_path), "big", 100) == b"x" * 100
    with pytest.raises(container_files.FileRefused):
        container_files.read_in_root(str(tmp_path), "/no/such/file", 100)
    with pytest.raises(container_files.FileRefused):
        container_files.read_in_root(str(tmp_path / "gone"), "x", 100)


def test_a_read_past_its_deadline_is_abandoned_counted_and_does_not_hold_the_caller() -> None:
    # The real blocking source (a FUSE mount nobody serves) is in tests/security; here the
    # reader's own rules: give up at the deadline, refuse at once while every worker is stuck.
    release = threading.Event()
    counters = Counters()
    reader = container_files.FileReader(workers=1, deadline_s=0.05, counters=counters)
    start = time.monotonic()
    with pytest.raises(container_files.ReadAbandoned):
        reader.call(release.wait)
    assert time.monotonic() - start < 0.5
    with pytest.raises(container_files.ReadAbandoned, match="stuck"):
        reader.call(lambda: b"never run")
    assert counters.snapshot() == {"container_read_abandoned": 1, "container_read_busy": 1}
    release.set()
    time.sleep(0.05)  # the stuck worker finishes and is free again
    assert reader.call(lambda: b"ok") == b"ok"


def test_an_error_in_the_work_reaches_the_caller() -> None:
    reader = container_files.FileReader(workers=1, deadline_s=1.0)

    def fail() -> bytes:
        raise container_files.FileRefused("x: not a regular file")

    with pytest.raises(container_files.FileRefused):
        reader.call(fail)
    assert reader.call(lambda: 1) == 1  # the worker was released


def test_this_kernel_offers_openat2_so_container_files_are_read() -> None:
    # Kernel 5.6+; where it is missing the agent logs this reason and reads no container file.
    assert container_files.unavailable() is None


def test_scanning_work_gets_its_own_longer_deadline() -> None:
    reader = container_files.FileReader(workers=1, deadline_s=0.01, scan_deadline_s=1.0)

    def scan() -> str:
        time.sleep(0.1)
        return "scanned"

    assert reader.call(scan, reader.scan_deadline_s) == "scanned"
    reader.close()

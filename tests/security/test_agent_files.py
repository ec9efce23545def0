"""Attacks on the agent through the files a container's processes name.

Each test runs real processes on real files: runc containers, real FIFOs, a real FUSE
filesystem that never answers, in mount namespaces the test makes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent.counters import Counters
from node_agent.judge.inspect_process import snapshot
from node_agent.kernel import container_files, image_layers
from node_agent.kernel.procfs import Executable, ProcFS
from tests.conftest import require
from tests.integration.node_agent.conftest import (
    Pod,
    make_policy,
    require_root,
    require_tool,
    running_agent,
)
from tests.integration.node_agent.test_runc_real import runc_container
from tests.support import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(90)]

HOST_WALLET = "4" + "HOSTSECRET" * 9 + "x"


def _argv(pid: int) -> tuple[str, ...]:
    with contextlib.suppress(OSError):
        return tuple(Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1])
    return ()


def test_a_symlink_planted_in_a_container_path_cannot_make_the_agent_read_a_node_file(
    tmp_path: Path,
) -> None:
    """``/app/conf -> <node dir>`` inside the container: the agent must stay in the container."""
    require_root("runc containers")
    node_dir = tmp_path / "node-only"  # exists on the node, not in the container
    node_dir.mkdir()
    (node_dir / "x.json").write_text(
        '{"pools": [{"url": "stratum+tcp://pool.example:3333", "user": "' + HOST_WALLET + '"}]}'
    )
    script = (
        "mkdir -p /app && /bin/busybox ln -s " + str(node_dir) + " /app/conf && "
        "echo container-config > /app/real.json && echo 'sleep 8' > /w && "
        "cd /app && exec /bin/sh /w --config /app/conf/x.json --config real.json"
    )
    with (
        running_agent(make_policy()) as running,
        runc_container(tmp_path, script, overlay=True) as (pod, pid),
    ):
        wait_for(lambda: "--config" in _argv(pid), 5, what="the container's workload")
        snap = snapshot(ProcFS(), pid)
        time.sleep(1.5)  # the running agent judges the same exec meanwhile
        reported = [r.detail for f in running.sink.for_pod(pod) for r in f.reasons]
    texts = "\n".join(snap.texts)
    assert HOST_WALLET not in texts, "the agent read a node file through a container symlink"
    assert "container-config" in texts  # the container's own relative config is still read
    assert not [d for d in reported if "pool.example" in d or HOST_WALLET[:12] in d], reported


def test_a_container_cannot_make_the_agent_read_its_proc_files_into_a_detection(
    tmp_path: Path,
) -> None:
    """``--config /proc/1/environ``: procfs shows what the container's own users may not see
    (another user's environment, under hidepid); the agent, with ptrace rights, must not read
    it and quote it in a detection that the namespace's readers can list."""
    require_root("runc containers")
    script = (
        "echo 'sleep 8' > /w && exec /bin/busybox env PROC_SECRET=s3cr3t-env-value "
        "/bin/sh /w --config /proc/1/environ --config /sys/kernel/uevent_seqnum"
    )
    with runc_container(tmp_path, script, overlay=True) as (_pod, pid):
        wait_for(lambda: "--config" in _argv(pid), 5, what="the container's workload")
        assert b"s3cr3t-env-value" in Path(f"/proc/{pid}/environ").read_bytes()
        snap = snapshot(ProcFS(), pid)
    assert snap.texts == (), "the agent read kernel state through a container's path"


def test_a_path_escaping_with_dotdot_or_proc_magic_links_stays_in_the_container(
    tmp_path: Path,
) -> None:
    """``..`` past the root and ``/proc/self/root`` jumps resolve inside the root, or not at all."""
    require_root("openat2 on a real tree")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "app.json").write_text("inside")
    (tmp_path / "outside.json").write_text(HOST_WALLET)
    (root / "etc" / "up").symlink_to("../../outside.json")
    (root / "etc" / "magic").symlink_to("/proc/self/root" + str(tmp_path / "outside.json"))
    read = container_files.read_in_root
    assert read(str(root), "/etc/app.json", 100) == b"inside"
    assert read(str(root), "/../../etc/app.json", 100) == b"inside"  # clamped at the root
    for name in ("/etc/up", "/etc/magic", "/../outside.json"):
        with pytest.raises(container_files.FileRefused):
            read(str(root), name, 100)


FIFO_WORKLOAD = r"""
import signal, sys, time
def stop(*_): raise TimeoutError
signal.signal(signal.SIGALRM, stop)
time.sleep(1.0)  # the agent judges the exec long before this
signal.alarm(4)
try:
    with open(sys.argv[sys.argv.index("--config") + 1], "rb") as config:
        data = config.read()
except TimeoutError:
    data = b"<no writer: the config was consumed by someone else>"
with open(sys.argv[-1], "wb") as out:
    out.write(data)
"""


def test_a_workload_reading_its_config_through_a_fifo_runs_unchanged_under_the_agent(
    tmp_path: Path,
) -> None:
    """``app --config <fifo>``: the agent must not open the FIFO and eat the writer's bytes."""
    require_root("kubelet-shaped cgroups and the proc connector")
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    app, out = tmp_path / "app.py", tmp_path / "seen"
    app.write_text(FIFO_WORKLOAD)
    payload = b'{"threads": 2, "note": "delivered through a pipe"}'
    pod = Pod()
    try:
        with running_agent(make_policy()) as running:
            writer = subprocess.Popen(  # blocks in open(O_WRONLY) until a reader opens the FIFO
                [sys.executable, "-c", f"open({str(fifo)!r}, 'wb').write({payload!r})"]
            )
            workload = pod.spawn([sys.executable, str(app), "--config", str(fifo), str(out)])
            wait_for(
                lambda: running.agent.counters.get("exec_inspected") >= 1,
                5,
                what="the agent to judge the workload's exec",
            )
            assert workload.wait(timeout=15) == 0
            writer.wait(timeout=5)
        assert out.read_bytes() == payload
    finally:
        with contextlib.suppress(NameError, ProcessLookupError):
            writer.kill()
        pod.cleanup()


def test_the_agent_never_opens_a_fifo_socket_or_device_a_process_names(tmp_path: Path) -> None:
    """Only regular files are opened; everything else is refused by type before any open."""
    require_root("a device node")
    os.mkfifo(tmp_path / "fifo")
    os.mknod(tmp_path / "null", 0o600 | 0o020000, os.makedev(1, 3))
    for name in ("fifo", "null", "."):
        with pytest.raises(container_files.FileRefused, match="not a regular file"):
            container_files.read_in_root(str(tmp_path), name, 10)


HUNG_MOUNT = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd, mnt, sleeper = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def check(result, what):
    if result != 0:
        raise OSError(ctypes.get_errno(), what)
check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
check(libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None), "make / private")
options = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
check(libc.mount(b"mg-hung", mnt.encode(), b"fuse", 0, options), "mount fuse")
os.close(fd)
os.execv(sys.executable, [sys.executable, sleeper, "--config", mnt + "/config.json"])
"""


@contextlib.contextmanager
def hung_filesystem() -> Iterator[int]:
    """A FUSE connection nobody serves: every lookup below its mount waits until it is closed."""
    require(Path("/dev/fuse").exists(), "/dev/fuse (FUSE) is not available")
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)  # the last close aborts the connection: stuck lookups fail with ENOTCONN


def test_a_hung_container_file_cannot_freeze_detection_on_the_node(tmp_path: Path) -> None:
    """A config on a filesystem that never answers (hung NFS, stalled FUSE) must not stop the
    agent's loop: another pod's miner is still reported, and the stuck read is counted."""
    require_root("a FUSE mount in a private mount namespace and kubelet-shaped cgroups")
    mount_point, sleeper = tmp_path / "mnt", tmp_path / "sleeper.py"
    mount_point.mkdir()
    sleeper.write_text("import time\ntime.sleep(30)\n")
    stuck, miner = Pod(), Pod()
    try:
        with hung_filesystem() as fuse, running_agent(make_policy()) as running:
            workload = stuck.spawn(
                [sys.executable, "-c", HUNG_MOUNT, str(fuse), str(mount_point), str(sleeper)],
                pass_fds=(fuse,),
            )
            wait_for(
                lambda: "--config" in _argv(workload.pid), 5, what="the workload on a hung mount"
            )
            time.sleep(0.5)  # the agent meets the hung config first
            miner.spawn(
                [sys.executable, str(sleeper), "-o", "stratum+tcp://127.0.0.1:3333",
                 "--donate-level=1"]
            )  # fmt: skip
            try:
                found = running.sink.wait_for(miner, "Exec", 5, what="the other pod's miner")
            except AssertionError as err:
                counts = running.agent.counters.snapshot()
                raise AssertionError(f"{err}; agent counters: {counts}") from err
            abandoned = running.agent.counters.get("container_read_abandoned")
            busy = running.agent.counters.get("container_read_busy")
            for pod in (stuck, miner):
                for process in pod.processes:
                    process.kill()
    finally:
        stuck.cleanup()
        miner.cleanup()
    assert "pool-url-loopback" in {r.signal for r in found.reasons}  # the test pool is local
    assert abandoned >= 1
    assert abandoned + busy >= 1


def test_container_file_reads_wait_no_longer_than_the_deadline_and_never_queue(
    tmp_path: Path,
) -> None:
    """With every reader stuck, a further read is refused at once instead of waiting."""
    require_root("a FUSE mount in a private mount namespace")
    mount_point, sleeper = tmp_path / "mnt", tmp_path / "sleeper.py"
    mount_point.mkdir()
    sleeper.write_text("import time\ntime.sleep(30)\n")
    counters = Counters()
    reader = container_files.FileReader(workers=2, deadline_s=1.0, counters=counters)
    with hung_filesystem() as fuse:
        workload = subprocess.Popen(
            [sys.executable, "-c", HUNG_MOUNT, str(fuse), str(mount_point), str(sleeper)],
            pass_fds=(fuse,),
        )
        try:
            wait_for(lambda: "--config" in _argv(workload.pid), 5, what="the hung workload")
            took = []
            for _ in range(3):
                start = time.monotonic()
                snap = snapshot(ProcFS(), workload.pid, files=reader)
                took.append(time.monotonic() - start)
                assert snap.texts == ()
        finally:
            workload.kill()
            workload.wait(timeout=5)
    assert counters.get("container_read_abandoned") == 2
    # The third snapshot's reads (the config, and since issue 13 the interpreter's script
    # checked for hidden code) are each refused at once.
    assert counters.get("container_read_busy") >= 1
    assert all(0.9 < t < 2.0 for t in took[:2])  # waited for the deadline, and no longer
    assert took[2] < 0.5  # every reader stuck: refused at once, not queued


def test_a_symlink_in_the_writable_layer_cannot_make_the_agent_look_at_node_files(
    tmp_path: Path,
) -> None:
    """The upper layer is a host directory the container writes: ``/opt -> <node dir>`` in it
    must not make a node file count as "written into the container" (or probe its existence)."""
    require_root("a real overlay mount")
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for directory in (lower, upper, work, merged):
        directory.mkdir()
    node_dir = tmp_path / "node-only"
    node_dir.mkdir()
    (node_dir / "miner").write_bytes(b"\x7fELF")
    (lower / "bin").mkdir()
    layers = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(
        [require_tool("mount"), "-t", "overlay", "overlay", "-o", layers, str(merged)],
        check=True,
        timeout=10,
    )
    try:
        (merged / "opt").symlink_to(node_dir)  # what a process in the container can do
        (merged / "bin" / "own").write_bytes(b"\x7fELF")  # and a binary it really wrote
        # The agent's view: the upper layer, as mountinfo names it, and the exec'd paths.
        proc = tmp_path / "proc"
        (proc / "42" / "ns").mkdir(parents=True)
        (proc / "42" / "ns" / "mnt").symlink_to("mnt:[4026532999]")
        (proc / "42" / "mountinfo").write_text(
            f"10 1 0:40 / / rw - overlay overlay rw,lowerdir={lower},upperdir={upper},"
            f"workdir={work}\n"
        )
        (proc / "1").mkdir()
        (proc / "1" / "root").symlink_to("/")
        fake = ProcFS(proc)
        cache = image_layers.OverlayCache(8)
        scope = "pod/c1"
        assert image_layers.in_upper_layer(fake, 42, Executable("/bin/own", False), scope, cache)
        seen = image_layers.in_upper_layer(fake, 42, Executable("/opt/miner", False), scope, cache)
        assert seen is not True, "a node file was taken for one the container wrote"
    finally:
        subprocess.run([require_tool("umount"), str(merged)], check=True, timeout=10)

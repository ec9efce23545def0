"""Real containerd containers (Debian's containerd + runc, cgroupfs driver) seen by the agent.

One private containerd (its own root, state and sockets under a temporary folder, CRI plugin
off) pulls a busybox image from Debian's docker-registry on loopback and runs containers with
kubelet-shaped cgroup paths (``kubepods/besteffort/pod<uid>/<container-id>``), each container
on containerd's real overlayfs snapshotter. The daemon, the registry and the pulled image are
shared by the module; each test has its own pod uid and container id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node_agent.judge.inspect_process import snapshot
from node_agent.kernel.procfs import Executable, ProcFS
from tests.integration.webhook import oci
from tests.support import wait_for

from .conftest import (
    Pod,
    children,
    make_policy,
    remove_runtime_cgroups,
    require_root,
    require_tool,
    running_agent,
    wait_for_exe,
)

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(90)]

APPLETS = ("sh", "sleep", "cp", "mkdir", "true", "cat", "echo", "ls", "rm")
NAMESPACE = "default"
SNAPSHOTS = "io.containerd.snapshotter.v1.overlayfs/snapshots"
SHIM_STATE = Path("/run/containerd")  # containerd 1.6 puts shim sockets in /run/containerd/s,
# whatever its config says; IO fifos and runc's state are kept in the test's folder instead.


@dataclass(frozen=True)
class Containerd:
    """A running private containerd with the test image pulled."""

    ctr: str
    folder: Path
    image: str

    @property
    def socket(self) -> Path:
        return self.folder / "containerd.sock"

    @property
    def root(self) -> Path:
        return self.folder / "root"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.ctr, "-a", str(self.socket), "-n", NAMESPACE, *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def task_pid(self, container_id: str) -> int:
        for line in self.run("tasks", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == container_id:
                return int(fields[1])
        raise AssertionError(f"no task for container {container_id}")

    def task_status(self, container_id: str) -> str | None:
        for line in self.run("tasks", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == container_id:
                return fields[2]
        return None


def _config(folder: Path) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f"""version = 2
root = "{folder / "root"}"
state = "{folder / "state"}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{folder / "containerd.sock"}"
[ttrpc]
  address = "{folder / "containerd.sock.ttrpc"}"
[debug]
  address = "{folder / "debug.sock"}"
[metrics]
  address = ""
"""
    )
    return config


def _our_processes(marker: str) -> list[int]:
    """Pids whose command line names ``marker`` (our socket): the shims our daemon started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
    return found


def _mounts_under(folder: Path) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4].replace("\\040", " ")
        if point == str(folder) or point.startswith(f"{folder}/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _log_tail(folder: Path) -> str:
    return (folder / "containerd.log").read_text()[-3000:]


def _busybox_image(registry: str, busybox: str) -> str:
    """Push busybox-static plus applet links; returns the repository:tag to pull."""
    repository, tag = "tools/busybox", "it"
    oci.push_image(
        registry,
        repository,
        tag=tag,
        cmd=["/bin/sleep", "3600"],
        env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        files={"bin/busybox": (Path(busybox).read_bytes(), 0o755), "tmp/.keep": (b"", 0o644)},
        links={f"bin/{applet}": "busybox" for applet in APPLETS},
    )
    return f"{repository}:{tag}"


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """A private containerd, a loopback registry and a pulled busybox image, torn down after."""
    require_root("containerd containers")
    binary = require_tool("containerd")
    ctr = require_tool("ctr")
    busybox = require_tool("busybox")
    require_tool("docker-registry")
    require_tool("containerd-shim-runc-v2")
    require_tool("runc")
    folder = tmp_path_factory.mktemp("containerd")
    storage = folder / "registry"
    storage.mkdir()
    socket = folder / "containerd.sock"
    shim_state_existed = SHIM_STATE.exists()
    process: subprocess.Popen[bytes] | None = None
    daemon: Containerd | None = None
    try:
        with oci.Registry(storage, folder) as registry:
            reference = _busybox_image(registry.url, busybox)
            with (folder / "containerd.log").open("wb") as log:
                process = started = subprocess.Popen(
                    [binary, "--config", str(_config(folder))],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

            def listening() -> bool:
                if started.poll() is not None:
                    pytest.fail(f"containerd exited: {_log_tail(folder)}")
                return socket.exists()

            wait_for(
                listening,
                15,
                what=lambda: f"containerd's socket; its log: {_log_tail(folder)}",
                interval=0.02,
            )
            daemon = Containerd(ctr, folder, f"{registry.host}/{reference}")
            daemon.run("images", "pull", "--plain-http", daemon.image)
        # The registry is no longer needed: the image is in containerd's content store.
        yield daemon
    finally:
        if daemon is not None:
            for line in daemon.run("containers", "ls", "-q", check=False).stdout.split():
                daemon.run("tasks", "kill", "-a", "-s", "SIGKILL", line, check=False)
                daemon.run("tasks", "delete", "-f", line, check=False)
                daemon.run("containers", "delete", line, check=False)
        if process is not None:
            _stop(process)
        for pid in _our_processes(str(socket)):  # shims re-parent to PID 1: ours by address
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for point in _mounts_under(folder):
            umount = subprocess.run(["umount", point], check=False, timeout=10)
            if umount.returncode != 0:
                subprocess.run(["umount", "-l", point], check=False, timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
        if not shim_state_existed:
            for level in (SHIM_STATE / "s", SHIM_STATE):
                with contextlib.suppress(OSError):
                    level.rmdir()  # only when empty: nobody else's sockets are removed


@contextlib.contextmanager
def containerd_container(daemon: Containerd, script: str) -> Iterator[tuple[Pod, int]]:
    """``ctr run -d`` of the pulled image running ``/bin/sh -c script`` in a kubelet cgroup."""
    pod = Pod.__new__(Pod)
    pod.uid = str(uuid.uuid4())
    pod.container_id = uuid.uuid4().hex + uuid.uuid4().hex
    pod.processes = []
    rel = f"kubepods/besteffort/pod{pod.uid}/{pod.container_id}"
    try:
        daemon.run(
            "run",
            "-d",
            "--cgroup",
            rel,
            "--fifo-dir",
            str(daemon.folder / "fifo"),
            "--runc-root",
            str(daemon.folder / "runc"),
            daemon.image,
            pod.container_id,
            "/bin/sh",
            "-c",
            script,
        )
        yield pod, daemon.task_pid(pod.container_id)
    finally:
        daemon.run("tasks", "kill", "-a", "-s", "SIGKILL", pod.container_id, check=False)
        for _ in range(50):
            if daemon.task_status(pod.container_id) in (None, "STOPPED"):
                break
            time.sleep(0.05)
        daemon.run("tasks", "delete", "-f", pod.container_id, check=False)
        daemon.run("containers", "delete", pod.container_id, check=False)
        remove_runtime_cgroups(rel)


MINER = "sleep {seconds}; : stratum+tcp://127.0.0.1:3333 --donate-level=1"

# A shipped busybox runs a miner-looking shell in the background, then the container drops a
# copy of busybox into /opt and execs it as a miner-looking shell (busybox picks the applet by
# argv[0], so "sh" runs the shell under the file name xmrig).
SHIPPED_AND_DROPPED = (
    "sh -c 'sleep 8; : stratum+tcp://127.0.0.1:3333 --donate-level=2' & "
    "mkdir -p /opt && cp /bin/busybox /opt/xmrig && exec -a sh /opt/xmrig -c "
    "'sleep 8; : stratum+tcp://127.0.0.1:3333 --donate-level=1'"
)


def test_a_containerd_container_from_a_registry_image_is_attributed_and_reported(
    containerd: Containerd,
) -> None:
    with (
        running_agent(make_policy()) as running,
        containerd_container(containerd, MINER.format(seconds=6)) as (pod, pid),
    ):
        found = running.sink.wait_for_match(
            lambda f: f.pid == pid and f.layer == "Exec", 8, what=f"an Exec finding for pid {pid}"
        )
        mnt_ns = Path(f"/proc/{pid}/ns/mnt").readlink()
        pid_ns = Path(f"/proc/{pid}/ns/pid").readlink()
        root = Path(f"/proc/{pid}/root/").stat()
        shipped = snapshot(ProcFS(), pid)
    assert mnt_ns != Path("/proc/self/ns/mnt").readlink(), "not a container: same mount ns"
    assert pid_ns != Path("/proc/self/ns/pid").readlink()
    ours = Path("/").stat()
    assert (root.st_dev, root.st_ino) != (ours.st_dev, ours.st_ino), "not a container: same /"
    assert (found.pod_uid, found.container_id) == (pod.uid, pod.container_id)
    assert found.cgroup.endswith(f"kubepods/besteffort/pod{pod.uid}/{pod.container_id}")
    assert found.executable == "/bin/busybox"
    signals = {r.signal for r in found.reasons}
    assert "pool-url-loopback" in signals  # the test pool is on loopback
    assert "not-in-image" not in signals
    assert shipped.upper_layer is False, "the image's own busybox is in a lower layer"


def test_a_binary_dropped_into_a_containerd_container_is_not_in_its_image(
    containerd: Containerd,
) -> None:
    proc = ProcFS()
    with (
        running_agent(make_policy()) as running,
        containerd_container(containerd, SHIPPED_AND_DROPPED) as (pod, pid),
    ):
        wait_for_exe(proc, pid, "/opt/xmrig")
        sleepers = [
            c for c in children(proc, pid) if proc.exe(c) == Executable("/bin/busybox", False)
        ]
        dropped_snap = snapshot(proc, pid)
        shipped_snaps = [snapshot(proc, c) for c in sleepers]
        dropped = running.sink.wait_for_match(
            lambda f: f.pod_uid == pod.uid and f.executable == "/opt/xmrig",
            8,
            what="a finding for the dropped /opt/xmrig",
        )
        shipped = running.sink.wait_for_match(
            lambda f: f.pod_uid == pod.uid and "--donate-level=2" in (f.command_line or ""),
            8,
            what="a finding for the shipped busybox shell",
        )
        findings = running.sink.for_pod(pod)
        # The dropped copy really is in containerd's overlayfs snapshot of this container.
        uppers = list((containerd.root / SNAPSHOTS).glob("*/fs/opt/xmrig"))
    assert len(uppers) == 1, uppers
    assert dropped_snap.owner.container_id == pod.container_id
    assert dropped_snap.upper_layer is True
    assert shipped_snaps, "the shipped busybox shell was not found"
    assert all(s.upper_layer is False for s in shipped_snaps)
    assert (dropped.pod_uid, dropped.container_id) == (pod.uid, pod.container_id)
    assert {"not-in-image", "pool-url-loopback"} <= {r.signal for r in dropped.reasons}
    assert shipped.executable == "/bin/busybox"
    assert "pool-url-loopback" in {r.signal for r in shipped.reasons}
    for finding in findings:
        if finding.executable == "/bin/busybox":
            assert "not-in-image" not in {r.signal for r in finding.reasons}, finding.summary


def test_kill_process_kills_the_miner_in_a_containerd_container(
    containerd: Containerd,
) -> None:
    with (
        running_agent(make_policy(kill=True)) as running,
        containerd_container(containerd, MINER.format(seconds=60)) as (pod, pid),
    ):
        started = time.monotonic()
        found = running.sink.wait_for_match(
            lambda f: f.pid == pid and f.layer == "Exec", 8, what=f"an Exec finding for pid {pid}"
        )
        wait_for(
            lambda: not Path(f"/proc/{pid}").exists(),
            10,
            what=f"the miner {pid} to be killed",
            interval=0.02,
        )
        gone_after = time.monotonic() - started
        wait_for(
            lambda: containerd.task_status(pod.container_id) == "STOPPED",
            5,
            what="containerd to see its task stop",
        )
    assert (found.pod_uid, found.container_id) == (pod.uid, pod.container_id)
    assert "pool-url-loopback" in {r.signal for r in found.reasons}
    assert found.actions_taken, found.summary
    assert found.actions_taken[0].startswith("KillProcess: killed"), found.actions_taken
    assert gone_after < 5, f"the miner lived {gone_after:.1f} s"

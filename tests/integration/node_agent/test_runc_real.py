"""A real container (runc, busybox-static rootfs, kubelet cgroupfs path) seen by the agent."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent.judge import masquerade
from node_agent.judge.inspect_process import snapshot
from node_agent.kernel.procfs import Executable, ProcFS
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


@contextlib.contextmanager
def runc_container(tmp_path: Path, script: str, overlay: bool = False) -> Iterator[tuple[Pod, int]]:
    """A detached runc container; with ``overlay`` its / is the busybox image under an upper
    layer in tmp_path, mounted the way containerd's snapshotter does it."""
    runc = require_tool("runc")
    busybox = require_tool("busybox")
    pod = Pod.__new__(Pod)
    pod.uid = str(uuid.uuid4())
    pod.container_id = uuid.uuid4().hex + uuid.uuid4().hex
    pod.processes = []
    bundle = tmp_path / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy(busybox, bundle / "rootfs" / "bin" / "busybox")
    for applet in ("sh", "sleep", "true", "cp", "mkdir"):
        (bundle / "rootfs" / "bin" / applet).symlink_to("busybox")
    subprocess.run([runc, "spec"], cwd=bundle, check=True, timeout=10)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/sh", "-c", script]
    rel = f"kubepods/besteffort/pod{pod.uid}/{pod.container_id}"
    spec["linux"]["cgroupsPath"] = rel
    merged = bundle / "merged"
    if overlay:
        layers = f"lowerdir={bundle / 'rootfs'},upperdir={tmp_path / 'upper'}"
        for directory in (merged, tmp_path / "upper", tmp_path / "work"):
            directory.mkdir()
        subprocess.run(
            [require_tool("mount"), "-t", "overlay", "overlay", "-o",
             f"{layers},workdir={tmp_path / 'work'}", str(merged)],
            check=True,
            timeout=10,
        )  # fmt: skip
        spec["root"] = {"path": "merged", "readonly": False}
    (bundle / "config.json").write_text(json.dumps(spec))
    state = tmp_path / "state"
    name = f"mgit{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run(
            [runc, "--root", str(state), "run", "-d", name],
            cwd=bundle,
            check=True,
            timeout=20,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except BaseException:
        if overlay:
            subprocess.run([require_tool("umount"), str(merged)], check=False, timeout=10)
        raise
    try:
        info = json.loads(
            subprocess.run(
                [runc, "--root", str(state), "state", name],
                check=True,
                capture_output=True,
                timeout=10,
            ).stdout
        )
        yield pod, int(info["pid"])
    finally:
        subprocess.run([runc, "--root", str(state), "kill", name, "KILL"], check=False, timeout=10)
        time.sleep(0.2)
        subprocess.run(
            [runc, "--root", str(state), "delete", "--force", name], check=False, timeout=10
        )
        if overlay:
            subprocess.run([require_tool("umount"), str(merged)], check=True, timeout=10)
        remove_runtime_cgroups(rel)


def test_a_runc_container_process_is_attributed_and_its_miner_command_reported(
    tmp_path: Path,
) -> None:
    require_root("runc containers")
    with (
        running_agent(make_policy()) as running,
        runc_container(tmp_path, "sleep 4; : stratum+tcp://127.0.0.1:3333 --donate-level=1") as (
            pod,
            pid,
        ),
    ):
        found = running.sink.wait_for(pod, "Exec", timeout=8)
        assert Path(f"/proc/{pid}/ns/pid").readlink() != Path("/proc/self/ns/pid").readlink()
    assert found.container_id == pod.container_id
    assert found.executable == "/bin/busybox"
    assert "pool-url-loopback" in {r.signal for r in found.reasons}  # a loopback pool


# busybox picks its applet by argv[0], so the copy runs as "sleep" under its own file name.
DROPPER = "sleep 6 & mkdir -p /opt && cp /bin/busybox /opt/{name} && exec -a sleep /opt/{name} 6"

MINER_DROPPER = (
    "mkdir -p /opt && cp /bin/busybox /opt/xmrig && exec -a sh /opt/xmrig -c "
    "'sleep 6; : stratum+tcp://127.0.0.1:3333 --donate-level=1'"
)


def test_a_binary_written_into_a_running_container_is_not_in_its_image(
    tmp_path: Path,
) -> None:
    require_root("runc containers on overlayfs")
    proc = ProcFS()
    with runc_container(tmp_path, DROPPER.format(name="helper"), overlay=True) as (pod, pid):
        wait_for_exe(proc, pid, "/opt/helper")
        (sleeper,) = children(proc, pid)
        dropped = snapshot(proc, pid)
        shipped = snapshot(proc, sleeper)
    assert dropped.owner.container_id == pod.container_id
    assert dropped.upper_layer is True
    assert (shipped.exe, shipped.upper_layer) == (Executable("/bin/busybox", False), False)
    assert (tmp_path / "upper" / "opt" / "helper").is_file()
    reasons = masquerade.reasons(
        dropped.comm, dropped.argv, dropped.exe, False, upper_layer=dropped.upper_layer
    )
    assert [r.signal for r in reasons] == ["not-in-image"]


def test_the_agent_reports_a_miner_dropped_into_a_container_as_not_in_the_image(
    tmp_path: Path,
) -> None:
    require_root("runc containers on overlayfs")
    with (
        running_agent(make_policy()) as running,
        runc_container(tmp_path, MINER_DROPPER, overlay=True) as (pod, _pid),
    ):
        found = running.sink.wait_for(pod, "Exec", timeout=8)
    assert found.executable == "/opt/xmrig"
    assert "not-in-image" in {r.signal for r in found.reasons}


def test_a_shipped_binary_in_an_overlay_container_is_not_flagged(tmp_path: Path) -> None:
    require_root("runc containers on overlayfs")
    with (
        running_agent(make_policy()) as running,
        runc_container(
            tmp_path, "sleep 3; : stratum+tcp://127.0.0.1:3333 --donate-level=1", overlay=True
        ) as (pod, _pid),
    ):
        found = running.sink.wait_for(pod, "Exec", timeout=8)
    assert found.executable == "/bin/busybox"
    assert "not-in-image" not in {r.signal for r in found.reasons}


# The container runs a shipped binary, then downloads a "miner" (busybox carrying a stratum
# client's strings) and tries to run it; exit codes land in the upper layer for the test.
GATED = (
    "sleep 1.5; true; echo $? > /shipped; mkdir -p /opt && cp /bin/busybox /opt/app"
    " && echo 'stratum+tcp://%s mining.subscribe' >> /opt/app;"
    " (exec -a true /opt/app); echo $? > /dropped; sleep 5"
)


def test_the_exec_gate_marks_a_new_container_and_refuses_a_miner_it_downloads(
    tmp_path: Path,
) -> None:
    require_root("fanotify on a runc container's root mount")
    with (
        running_agent(make_policy(), exec_gate=True) as running,
        runc_container(tmp_path, GATED, overlay=True) as (pod, _pid),
    ):
        wait_for(
            (tmp_path / "upper" / "dropped").exists, 8, what="the container to try the download"
        )
        refused = [f for f in running.sink.findings if "RefuseExec" in f.actions_taken]
        counts = running.agent.counters.snapshot()
    assert counts.get("gate_containers_marked") == 1
    assert (tmp_path / "upper" / "shipped").read_text().strip() == "0"
    assert (tmp_path / "upper" / "dropped").read_text().strip() == "126", "exec not refused"
    (refusal,) = refused
    assert refusal.executable is not None
    assert refusal.executable.endswith("/opt/app")
    assert "stratum+tcp://" in refusal.reasons[0].detail
    assert (refusal.pod_uid, refusal.container_id) == (pod.uid, pod.container_id)

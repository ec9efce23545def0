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

from .conftest import (
    CGROUP_ROOT,
    CONTROLLERS,
    Pod,
    make_policy,
    own_cgroup,
    require_root,
    require_tool,
    running_agent,
)

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(90)]


@contextlib.contextmanager
def runc_container(tmp_path: Path, script: str) -> Iterator[tuple[Pod, int]]:
    runc = require_tool("runc")
    busybox = require_tool("busybox")
    pod = Pod.__new__(Pod)
    pod.uid = str(uuid.uuid4())
    pod.container_id = uuid.uuid4().hex + uuid.uuid4().hex
    pod.processes = []
    bundle = tmp_path / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy(busybox, bundle / "rootfs" / "bin" / "busybox")
    for applet in ("sh", "sleep", "true"):
        (bundle / "rootfs" / "bin" / applet).symlink_to("busybox")
    subprocess.run([runc, "spec"], cwd=bundle, check=True, timeout=10)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/sh", "-c", script]
    rel = f"kubepods/besteffort/pod{pod.uid}/{pod.container_id}"
    spec["linux"]["cgroupsPath"] = rel
    (bundle / "config.json").write_text(json.dumps(spec))
    state = tmp_path / "state"
    name = f"mgit{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [runc, "--root", str(state), "run", "-d", name],
        cwd=bundle,
        check=True,
        timeout=20,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        for ctrl in (*CONTROLLERS, "cpuset", "devices", "freezer", "systemd", "unified"):
            base = CGROUP_ROOT / ctrl
            if not base.is_dir():
                continue
            leaf = (
                base / own_cgroup(ctrl if ctrl != "systemd" else "name=systemd").lstrip("/") / rel
            )
            for level in (leaf, leaf.parent, leaf.parent.parent, leaf.parent.parent.parent):
                for _ in range(20):
                    try:
                        level.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        if level not in (leaf, leaf.parent):
                            break  # shared qos/kubepods levels: leave them to whoever uses them
                        time.sleep(0.05)


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
    assert found is not None
    assert found.container_id == pod.container_id
    assert found.executable == "/bin/busybox"
    assert "pool-url" in {r.signal for r in found.reasons}

"""Ancestry under a real containerd: ``ctr task exec`` is how ``kubectl exec`` reaches a node.

The exec'd process is started by containerd's shim (a subreaper, outside the container) through
``runc exec``, exactly as the kubelet's exec does; the image is on containerd's overlayfs
snapshotter, so a shipped binary is in the image's layers.
"""

from __future__ import annotations

import uuid

import pytest

from minerguard.api.investigation import Entry, ExecutableOrigin
from node_agent.kernel.procfs import ProcFS

from .conftest import make_policy, running_agent
from .test_containerd_real import Containerd, containerd, containerd_container

__all__ = ["containerd"]  # the module's fixture, shared here

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(90)]

SESSION = 'P=stratum; sh -c "sleep 6; : $P+tcp://127.0.0.1:3333 --donate-level=1"; true'


def test_a_ctr_task_exec_child_reports_entry_exec_and_a_shipped_binary_reports_image(
    containerd: Containerd,
) -> None:
    exec_id = f"mg{uuid.uuid4().hex[:8]}"
    with (
        running_agent(make_policy()) as running,
        containerd_container(containerd, "sleep 12") as (pod, init),
    ):
        containerd.run(
            "tasks",
            "exec",
            "--detach",
            "--exec-id",
            exec_id,
            "--fifo-dir",
            str(containerd.folder / "fifo"),
            pod.container_id,
            "/bin/sh",
            "-c",
            SESSION,
        )
        found = running.sink.wait_for_match(
            lambda f: (
                f.pod_uid == pod.uid
                and f.pid != init
                and "stratum+tcp://" in (f.command_line or "")
                and f.ancestry is not None
            ),
            10,
            what="the exec session's child",
        )
        (root,) = found.ancestry.lineage if found.ancestry else ()
        shim = ProcFS().stat(root.pid).ppid
        shim_command = " ".join(ProcFS().argv(shim))
    assert found.ancestry is not None
    assert found.ancestry.entry is Entry.EXEC, found.ancestry.why
    assert root.command_line == f"/bin/sh -c {SESSION}"
    assert "containerd-shim" in shim_command, "the exec'd root hangs off the shim"
    assert found.executable == "/bin/busybox"
    assert found.ancestry.executable_origin is ExecutableOrigin.IMAGE

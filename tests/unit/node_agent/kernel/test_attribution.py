import pytest

from node_agent.kernel.attribution import attribute, attribute_lines
from node_agent.kernel.procfs import ProcFS
from tests.unit.node_agent.conftest import CID1, CID2, POD1, POD2

UID = "0f6c1d2e-3b4a-4c5d-8e9f-a0b1c2d3e4f5"
UNDERSCORED = UID.replace("-", "_")
ID = "f" * 64


@pytest.mark.parametrize(
    ("path", "qos", "runtime"),
    [
        (f"/kubepods/burstable/pod{UID}/{ID}", "burstable", None),
        (f"/kubepods/besteffort/pod{UID}/{ID}", "besteffort", None),
        (f"/kubepods/pod{UID}/{ID}", "guaranteed", None),
        (f"/process_api/abc/kubepods/burstable/pod{UID}/{ID}", "burstable", None),
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UNDERSCORED}.slice/"
            f"cri-containerd-{ID}.scope",
            "burstable",
            "containerd",
        ),
        (f"/kubepods.slice/kubepods-pod{UNDERSCORED}.slice/crio-{ID}.scope", "guaranteed", "crio"),
        (
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UNDERSCORED}.slice/"
            f"docker-{ID}.scope",
            "besteffort",
            "docker",
        ),
        (
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
            f"kubelet-kubepods-besteffort-pod{UNDERSCORED}.slice/cri-containerd-{ID}.scope",
            "besteffort",
            "containerd",
        ),
        (f"/docker/{'e' * 64}/kubepods/burstable/pod{UID}/{ID}", "burstable", None),
    ],
)
def test_kubelet_cgroup_paths_of_both_drivers_name_pod_container_and_qos(
    path: str, qos: str, runtime: str | None
) -> None:
    found = attribute(path)
    assert found.pod_uid == UID
    assert found.container_id == ID
    assert found.qos == qos
    assert found.runtime == runtime
    assert found.in_pod


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/user.slice/user-0.slice/session-1.scope",
        "/system.slice/containerd.service",
        "/docker/abc",
    ],
)
def test_host_cgroups_belong_to_no_pod(path: str) -> None:
    found = attribute(path)
    assert not found.in_pod
    assert found.container_id is None
    assert found.key == path


def test_a_pod_level_cgroup_names_the_pod_but_no_container() -> None:
    found = attribute(f"/kubepods/burstable/pod{UID}")
    assert found.pod_uid == UID
    assert found.container_id is None


def test_conmon_scopes_are_not_containers() -> None:
    found = attribute(f"/kubepods.slice/kubepods-pod{UNDERSCORED}.slice/crio-conmon-{ID}.scope")
    assert found.container_id is None


def test_process_attribution_prefers_any_line_that_names_a_pod(proc: ProcFS) -> None:
    miner = attribute_lines(proc.cgroups(100))
    assert (miner.pod_uid, miner.container_id) == (POD1, CID1)
    masquerader = attribute_lines(proc.cgroups(200))
    assert (masquerader.pod_uid, masquerader.container_id, masquerader.qos) == (
        POD2,
        CID2,
        "besteffort",
    )
    assert not attribute_lines(proc.cgroups(300)).in_pod

import os
from pathlib import Path

import pytest

from node_agent.judge import masquerade
from node_agent.judge.inspect_process import snapshot
from node_agent.kernel.image_layers import (
    CACHE_SIZE,
    OverlayCache,
    in_upper_layer,
    parse_root_overlay,
)
from node_agent.kernel.procfs import MOUNTINFO_LIMIT, Executable, ProcFS

SNAP = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
LOWERS = ":".join(f"{SNAP}/{n}/fs" for n in range(97, 80, -1))
CONTAINERD = f"""\
1484 1421 0:312 / / rw,relatime master:482 - overlay overlay rw,lowerdir={LOWERS},\
upperdir={SNAP}/120/fs,workdir={SNAP}/120/work,uuid=on
1485 1484 0:315 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1486 1484 0:316 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
1490 1484 254:1 /var/lib/kubelet/pods/0f6c/volumes/kubernetes.io~empty-dir/cache /opt/cache \
rw,relatime - ext4 /dev/vda1 rw
1491 1484 254:1 /var/lib/kubelet/pods/0f6c/etc-hosts /etc/hosts rw,relatime - ext4 /dev/vda1 rw
"""


def test_a_containerd_root_overlay_yields_its_upper_and_every_lower_layer() -> None:
    found = parse_root_overlay(CONTAINERD)
    assert found is not None
    assert found.upperdir == f"{SNAP}/120/fs"
    assert found.lowerdirs == tuple(f"{SNAP}/{n}/fs" for n in range(97, 80, -1))
    assert found.subtree == "/"
    assert found.covered == ("/proc", "/dev", "/opt/cache", "/etc/hosts")


def test_mountinfo_octal_and_overlay_backslash_escapes_are_undone() -> None:
    # What Linux shows for mount -o 'lowerdir=/l a\,b\:c:/l2,upperdir=/u x\,y\:z,...'.
    line = (
        r"46 27 0:39 / / rw,relatime shared:7 master:3 - overlay overlay rw,"
        r"lowerdir=/l\040a\134\054b\134:c:/l2,upperdir=/u\040x\134\054y\134:z,"
        r"workdir=/w,uuid=on"
    )
    found = parse_root_overlay(line)
    assert found is not None
    assert found.lowerdirs == ("/l a,b:c", "/l2")
    assert found.upperdir == "/u x,y:z"


def test_layers_given_through_fsconfig_are_shown_one_per_option() -> None:
    line = (
        r"46 27 0:39 / / rw - overlay none rw,lowerdir+=/l\040a\054b:c,lowerdir+=/l2,"
        r"datadir+=/d,upperdir=/u\040x\134\054y\134:z,workdir=/w"
    )
    found = parse_root_overlay(line)
    assert found is not None
    assert found.lowerdirs == ("/l a,b:c", "/l2", "/d")
    assert found.upperdir == "/u x,y:z"


def test_a_root_that_is_not_an_overlay_with_an_upper_layer_yields_nothing() -> None:
    ext4 = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
    read_only = "30 1 0:40 / / ro - overlay overlay ro,lowerdir=/a:/b\n"
    relative = "30 1 0:40 / / rw - overlay overlay rw,lowerdir=1/fs,upperdir=2/fs,workdir=2/w\n"
    for text in (ext4, read_only, relative, "", "garbage\n"):
        assert parse_root_overlay(text) is None


def test_the_last_mount_on_slash_is_the_one_the_process_sees() -> None:
    stacked = (
        "1 0 0:2 / / rw - rootfs rootfs rw\n"
        "20 1 0:30 / / rw - overlay overlay rw,lowerdir=/old,upperdir=/old-up,workdir=/ow\n"
        "21 20 0:31 /sub / rw - overlay overlay rw,lowerdir=/new,upperdir=/new-up,workdir=/nw\n"
    )
    found = parse_root_overlay(stacked)
    assert found is not None
    assert (found.upperdir, found.subtree) == ("/new-up", "/sub")
    assert parse_root_overlay(stacked + "22 1 254:0 / / rw - ext4 /dev/vda rw\n") is None


@pytest.fixture
def tree(tmp_path: Path) -> tuple[ProcFS, Path]:
    """A fake /proc with PID 42 in a container whose upper layer lives under a fake host root."""
    host = tmp_path / "host"
    upper = host / "snap" / "up"
    (upper / "opt").mkdir(parents=True)
    (upper / "opt" / "miner").write_bytes(b"\x7fELF")
    os.mkfifo(upper / "opt" / "fifo")
    pid = tmp_path / "proc" / "42"
    (pid / "ns").mkdir(parents=True)
    (pid / "ns" / "mnt").symlink_to("mnt:[4026532400]")
    (pid / "mountinfo").write_text(
        "10 1 0:40 / / rw - overlay overlay rw,lowerdir=/snap/lo,upperdir=/snap/up,workdir=/w\n"
        "11 10 0:41 / /opt/vol rw - tmpfs tmpfs rw\n"
    )
    (tmp_path / "proc" / "1").mkdir()
    (tmp_path / "proc" / "1" / "root").symlink_to(host)
    return ProcFS(tmp_path / "proc"), pid


def fresh() -> OverlayCache:
    return OverlayCache(CACHE_SIZE)


def exe(path: str, deleted: bool = False) -> Executable:
    return Executable(path, deleted)


def test_a_binary_in_the_upper_layer_is_not_in_the_image(tree: tuple[ProcFS, Path]) -> None:
    proc, _ = tree
    cache = fresh()
    assert in_upper_layer(proc, 42, exe("/opt/miner"), "pod/c1", cache) is True
    assert in_upper_layer(proc, 42, exe("/bin/sh"), "pod/c1", cache) is False
    assert in_upper_layer(proc, 42, exe("/opt/fifo"), "pod/c1", cache) is False  # not a file
    assert in_upper_layer(proc, 42, exe("/opt/vol/x"), "pod/c1", cache) is None  # a volume
    assert in_upper_layer(proc, 42, exe("/opt/miner", deleted=True), "pod/c1", cache) is None
    assert in_upper_layer(proc, 42, exe("/memfd:x"), "pod/c1", cache) is None


def test_the_overlay_is_parsed_once_per_container_and_namespace(
    tree: tuple[ProcFS, Path],
) -> None:
    proc, pid = tree
    cache = OverlayCache(1)
    assert in_upper_layer(proc, 42, exe("/opt/miner"), "pod/c1", cache) is True
    (pid / "mountinfo").write_text("27 1 254:0 / / rw - ext4 /dev/vda rw\n")
    assert in_upper_layer(proc, 42, exe("/opt/miner"), "pod/c1", cache) is True  # cached
    # A recycled namespace inode in another container does not hit the first one's entry.
    assert in_upper_layer(proc, 42, exe("/opt/miner"), "pod/c2", cache) is None
    assert len(cache) == 1
    assert in_upper_layer(proc, 42, exe("/opt/miner"), "pod/c1", cache) is None  # evicted


def test_an_upper_layer_out_of_sight_or_an_unreadable_process_cannot_be_told(
    tree: tuple[ProcFS, Path], proc: ProcFS
) -> None:
    fake, pid = tree
    (pid / "mountinfo").write_text(
        "10 1 0:40 / / rw - overlay overlay rw,lowerdir=/a,upperdir=/no/such/dir,workdir=/w\n"
    )
    assert in_upper_layer(fake, 42, exe("/opt/miner"), "s", fresh()) is None
    assert in_upper_layer(fake, 43, exe("/opt/miner"), "s", fresh()) is None  # gone
    # The golden tree has no ns links: no answer, and the snapshot still succeeds.
    assert in_upper_layer(proc, 100, exe("/usr/local/bin/xmrig"), "s", fresh()) is None
    assert snapshot(proc, 100).upper_layer is None


def test_a_binary_not_in_the_image_is_a_masquerade_reason() -> None:
    path = Executable("/usr/local/bin/kube-proxy", False)
    found = masquerade.reasons("kube-proxy", ("kube-proxy",), path, False, upper_layer=True)
    assert [(r.signal, r.weight) for r in found] == [("not-in-image", masquerade.W_NOT_IN_IMAGE)]
    assert "/usr/local/bin/kube-proxy is not in the image" in found[0].detail
    for upper in (False, None):
        assert (
            masquerade.reasons("kube-proxy", ("kube-proxy",), path, False, upper_layer=upper) == ()
        )
    assert masquerade.reasons("kthreadd", (), None, True, upper_layer=True) == ()


def test_a_mount_table_past_the_bound_is_remembered_as_unknown(
    tree: tuple[ProcFS, Path],
) -> None:
    proc, pid = tree
    cache = fresh()
    line = "11 10 0:41 / /mnt/x rw - tmpfs tmpfs rw\n"
    body = (pid / "mountinfo").read_text()
    (pid / "mountinfo").write_text(body + line * (MOUNTINFO_LIMIT // len(line) + 1))
    assert in_upper_layer(proc, 42, exe("/opt/miner"), "host", cache) is None
    assert len(cache) == 1

"""Write small /proc-like trees (and their cgroupfs) for tests of process ancestry.

The files have the kernel's formats (stat, status, cgroup, NUL-separated cmdline, the exe and
ns/pid links), so ``ProcFS`` reads them as it reads the real /proc.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BOOT_TIME = 1_764_000_000
HOST_NS = 4026531836
HOST_CGROUP = "/system.slice/containerd.service"


def container_cgroup(pod: str, container: str) -> str:
    """A kubelet-shaped cgroup v2 path of one container."""
    return f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod.replace('-', '_')}.slice/cri-containerd-{container}.scope"  # noqa: E501


@dataclass(frozen=True)
class P:
    """One process of a tree."""

    pid: int
    ppid: int
    argv: tuple[str, ...]
    exe: str
    nspid: tuple[int, ...] = ()
    cgroup: str = HOST_CGROUP
    pid_ns: int = HOST_NS
    start: int = 1000


def write_tree(root: Path, processes: list[P], cgroup_root: Path | None = None) -> Path:
    """Write ``processes`` under ``root``/proc (and their cgroup.procs); returns the /proc."""
    proc = root / "proc"
    proc.mkdir(parents=True, exist_ok=True)
    (proc / "stat").write_text(f"cpu  1 2 3 4\nbtime {BOOT_TIME}\n")
    members: dict[str, list[int]] = {}
    for p in processes:
        d = proc / str(p.pid)
        (d / "ns").mkdir(parents=True)
        comm = Path(p.argv[0]).name[:15] if p.argv else "x"
        rest = f"S {p.ppid} {p.pid} {p.pid} 0 -1 4194560 0 0 0 0 5 1 0 0 20 0 1 0 {p.start} 1000 10"
        (d / "stat").write_text(f"{p.pid} ({comm}) {rest}\n")
        nspid = "\t".join(str(n) for n in (p.nspid or (p.pid,)))
        (d / "status").write_text(f"Name:\t{comm}\nPPid:\t{p.ppid}\nNSpid:\t{nspid}\n")
        (d / "cgroup").write_text(f"0::{p.cgroup}\n")
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in p.argv))
        (d / "exe").symlink_to(p.exe)
        (d / "ns" / "pid").symlink_to(f"pid:[{p.pid_ns}]")
        members.setdefault(p.cgroup, []).append(p.pid)
    if cgroup_root is not None:
        for path, pids in members.items():
            directory = cgroup_root / path.lstrip("/")
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "cgroup.procs").write_text("".join(f"{pid}\n" for pid in pids))
    return proc

"""Was a process's executable shipped in its image, or written into the container later?

A container's / is an overlay: read-only image layers (lowerdirs) under one writable layer
(upperdir). A file in the upper layer was created or modified after the container started,
which is how "curl a miner into the pod and run it" looks on disk. The root overlay is found
in /proc/PID/mountinfo; its upperdir is a host path, read through the host's root.

Parsing mountinfo on every exec would be the expensive part, so the result is cached per
(container, mount namespace): a busy container then costs one readlink and one lstat per
exec. The namespace inode alone is not a key, since the kernel reuses it as soon as a
container exits; the container (cgroup) identity is never reused.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path

from minerguard.cache import MISSING, BoundedCache
from node_agent import errors
from node_agent.kernel import container_files
from node_agent.kernel.procfs import Executable, ProcFS

CACHE_SIZE = 1024
_OCTAL = re.compile(r"\\([0-7]{3})")
_BACKSLASHED = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class RootOverlay:
    """The overlay mounted at a process's /, with its layers as host paths."""

    upperdir: str
    lowerdirs: tuple[str, ...]
    subtree: str
    """Which directory of the overlay is mounted at / (the mountinfo root field, normally /)."""
    covered: tuple[str, ...]
    """Other mount points: a file below one of them is in a volume, not in any layer."""


def _unoctal(text: str) -> str:
    r"""Undo mountinfo's escapes (space, tab, newline, backslash, comma as ``\ooo``)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def _unbackslash(text: str) -> str:
    r"""Undo overlay's own option escapes (``\,`` ``\:`` ``\\``), kept in what it shows."""
    return _BACKSLASHED.sub(r"\1", text)


def _split_lowerdir(value: str) -> list[str]:
    """Split a legacy ``lowerdir=a:b::data`` value on its unescaped colons, unescaping."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p]


def parse_root_overlay(mountinfo: str) -> RootOverlay | None:
    """The overlay at "/" of a mountinfo table, or None when / is not an overlay with an upper.

    When several lines mount "/", the last one is on top: it is what the process sees.
    """
    root: tuple[str, str, str] | None = None
    covered: list[str] = []
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        pre, post = head.split(" "), tail.split(" ")
        if not sep or len(pre) < 6 or len(post) < 3:
            continue
        mount_point = _unoctal(pre[4])
        if mount_point == "/":
            root = (_unoctal(pre[3]), post[0], post[2])
        else:
            covered.append(mount_point)
    if root is None or root[1] != "overlay":
        return None
    upper: str | None = None
    lowers: list[str] = []
    for option in root[2].split(","):  # a comma inside a value is shown as \054
        name, _, value = _unoctal(option).partition("=")
        if name == "upperdir":
            upper = _unbackslash(value)
        elif name == "lowerdir":
            lowers.extend(_split_lowerdir(value))
        elif name in ("lowerdir+", "datadir+"):  # fsconfig(2) layers: shown unescaped
            lowers.append(value)
    if not upper or not upper.startswith("/"):
        return None  # no upper layer, or a path relative to the mounter's cwd: unusable
    return RootOverlay(
        upperdir=upper, lowerdirs=tuple(lowers), subtree=root[0], covered=tuple(covered)
    )


@dataclass(frozen=True, slots=True)
class _Upper:
    path: str
    """The upper layer's directory for the process's /, as the agent can open it."""
    covered: tuple[str, ...]


OverlayCache = BoundedCache[tuple[str, str, str], _Upper | None]
"""(proc root, container, mount namespace) → its upper layer, or None (cannot tell)."""

CACHE = OverlayCache(CACHE_SIZE, locked=True)


def _locate(proc: ProcFS, pid: int) -> _Upper | None:
    try:
        overlay = parse_root_overlay(proc.mountinfo(pid))
    except (errors.ProcessGone, errors.AccessDenied):
        raise  # a race or a refusal: not an answer to remember
    except errors.AgentError:
        return None  # a mount table past the bound (a busy host's): remembered as unknown
    if overlay is None:
        return None
    # The host's / through PID 1; else the agent's own, when it shares the host's files
    # (without a cluster, or where PID 1 is hidden from the agent). Only a visible upperdir counts.
    subtree = "" if overlay.subtree == "/" else overlay.subtree
    for base in (proc.host_root(), ""):
        upper = base + overlay.upperdir
        try:
            if Path(upper).is_dir():
                return _Upper(path=upper + subtree, covered=overlay.covered)
        except OSError:
            continue  # PID 1's root refused (EACCES): try the next
    return None


def in_upper_layer(
    proc: ProcFS, pid: int, exe: Executable, scope: str, cache: OverlayCache = CACHE
) -> bool | None:
    """Whether ``exe`` is in the writable layer of the process's root overlay.

    None when that cannot be told: / is not an overlay, the upper layer is out of sight, the
    binary is in memory or deleted, or /proc refused. ``scope`` names the container (its
    cgroup identity) so that a recycled namespace inode cannot hit another container's entry.
    """
    if exe.memfd or exe.deleted or not exe.path.startswith("/"):
        return None
    try:
        key = (str(proc.root), scope, proc.mount_ns(pid))
        upper = cache.get(key, MISSING)
        if upper is MISSING:
            upper = _locate(proc, pid)
            cache.put(key, upper)
    except (errors.AgentError, OSError):
        return None
    if upper is None:
        return None
    if any(exe.path == m or exe.path.startswith(m + "/") for m in upper.covered):
        return None
    try:
        # The upper layer is the container's to write: a symlink it planted on the way
        # (``/opt -> /etc``) must not walk the agent into the node's own tree.
        mode = container_files.lstat_in_root(upper.path, exe.path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, errors.AgentError):
        return None
    return stat.S_ISREG(mode)  # a whiteout (char device 0:0) means deleted, not written

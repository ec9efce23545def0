"""Reading files named by a container's processes without trusting the container's tree.

A path a process names (``--config /app/conf/x.json``) means something inside its container.
Opening ``/proc/PID/root`` + path from the agent is not the same thing: the kernel resolves an
absolute symlink planted anywhere along the way (``/app/conf -> /etc``) against the *agent's*
root, i.e. the node's, and ``O_NOFOLLOW`` only guards the last component. So every container
path is resolved by ``openat2(2)`` relative to a descriptor of the process's root with
``RESOLVE_IN_ROOT`` (``..`` and absolute symlinks stay inside that root) and
``RESOLVE_NO_MAGICLINKS`` (no ``/proc/self/root``-style jumps back out). Without openat2 (kernels
before 5.6, or an architecture whose number is not known here) nothing is read: failing closed
costs one signal, failing open leaks the node's files into detections.

The agent must not change what it observes either: opening a FIFO releases a writer blocked in
``open`` and the data is lost when the agent closes it; opening a device can have effects of
its own. The file is therefore resolved with ``O_PATH`` (which opens nothing), its type checked
with ``fstat`` and its filesystem with ``fstatfs`` (procfs, sysfs and the like hold views of
kernel and process state the container may not be allowed to see, never a config), and only a
regular file on an ordinary filesystem is then opened for reading through
``/proc/self/fd/N`` (the same inode, no second lookup, no race), without updating its access
time where the kernel allows.

Reads can hang (a stalled NFS or FUSE server), and the agent's loop is single-threaded, so
``FileReader`` runs them on a small bounded pool with a deadline: a read that misses it is
abandoned (its thread finishes whenever the kernel lets it) and counted, and when every worker
is stuck further reads are refused at once rather than queued.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import queue
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar, cast

from node_agent import errors
from node_agent.counters import Counters

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

IN_CONTAINER = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
"""How container paths are resolved. Not ``RESOLVE_NO_XDEV``: configs live on volumes
(ConfigMaps, Secrets) that are other mounts below the root, and a read confined to the root
filesystem would miss them; the deadline, not the mount, bounds what another filesystem costs."""

# openat2 got one number for every architecture on the unified table (5.6); the old ABIs differ.
_SYSCALL = {
    "x86_64": 437,
    "i386": 437,
    "i686": 437,
    "aarch64": 437,
    "arm64": 437,
    "armv7l": 437,
    "armv8l": 437,
    "ppc64le": 437,
    "ppc64": 437,
    "s390x": 437,
    "riscv64": 437,
    "loongarch64": 437,
}
SYS_OPENAT2 = _SYSCALL.get(platform.machine())
_NOATIME = getattr(os, "O_NOATIME", 0)

T = TypeVar("T")


class FileRefused(errors.AgentError):
    """A container file the agent will not read: unsafe path, not a regular file, missing."""


class ReadAbandoned(errors.AgentError):
    """A container file read missed its deadline, or every reader was busy with stuck reads."""


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """``openat2(2)``: a descriptor, or OSError; KernelFeatureError when the kernel lacks it."""
    if SYS_OPENAT2 is None:
        raise errors.KernelFeatureError(f"openat2 number unknown on {platform.machine()}")
    how = _OpenHow(flags, 0, resolve)
    encoded = os.fsencode(path)
    fd = _syscall(
        ctypes.c_long(SYS_OPENAT2),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(encoded),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        if code == errno.ENOSYS:
            raise errors.KernelFeatureError("openat2(2) is not available (kernel < 5.6)")
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def unavailable() -> str | None:
    """Why container files cannot be read safely here (no openat2), or None when they can."""
    try:
        os.close(openat2(-100, "/", os.O_PATH | os.O_CLOEXEC, IN_CONTAINER))  # AT_FDCWD
    except errors.KernelFeatureError as err:
        return str(err)
    except OSError as err:
        return f"openat2 refused: {err.strerror}"
    return None


# Kernel filesystems: their "files" are views of kernel and process state (a container's
# /proc/1/environ, /sys, debugfs), and reading some has effects. A config never lives there.
KERNEL_FILESYSTEMS = frozenset(
    {
        0x9FA0,  # proc
        0x62656572,  # sysfs
        0x64626720,  # debugfs
        0x74726163,  # tracefs
        0x73636673,  # securityfs
        0x27E0EB,  # cgroup
        0x63677270,  # cgroup2
        0xCAFE4A11,  # bpf
        0x62656570,  # configfs
        0xDE5E81E4,  # efivarfs
        0x6165676C,  # pstore
        0xF97CFF8C,  # selinuxfs
        0x43415D53,  # smackfs
        0x65735543,  # fusectl
        0x1CD1,  # devpts
        0x42494E4D,  # binfmt_misc
    }
)


class _StatFs(ctypes.Structure):
    _fields_ = (("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 120))


_fstatfs = _libc.fstatfs
_fstatfs.argtypes = (ctypes.c_int, ctypes.POINTER(_StatFs))


def filesystem_type(fd: int) -> int:
    """``f_type`` of the filesystem holding ``fd`` (O_PATH descriptors included)."""
    buf = _StatFs()
    if _fstatfs(fd, ctypes.byref(buf)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(buf.f_type) & 0xFFFFFFFF


def _reopen(path_fd: int) -> int:
    """Open for reading the inode an ``O_PATH`` descriptor holds (no path lookup again)."""
    target = f"/proc/self/fd/{path_fd}"
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        return os.open(target, flags | _NOATIME)
    except PermissionError:
        return os.open(target, flags)  # O_NOATIME needs ownership or CAP_FOWNER


def read_in_root(root: str, path: str, limit: int, resolve: int = IN_CONTAINER) -> bytes:
    """At most ``limit`` bytes of ``path`` resolved inside the directory ``root``.

    ``root`` is a path the agent may follow (``/proc/PID/root``); ``path`` is the container's
    claim, absolute or relative to that root. Raises FileRefused for anything but a regular
    file reached without leaving the root, KernelFeatureError without openat2.
    """
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise FileRefused(f"root {root}: {err.strerror}") from err
    try:
        try:
            path_fd = openat2(root_fd, path.lstrip("/") or ".", os.O_PATH | os.O_CLOEXEC, resolve)
        except OSError as err:
            raise FileRefused(f"{path}: {err.strerror}") from err
    finally:
        os.close(root_fd)
    try:
        mode = os.fstat(path_fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileRefused(f"{path}: not a regular file ({stat.filemode(mode)[0]})")
        try:
            kind = filesystem_type(path_fd)
        except OSError as err:
            raise FileRefused(f"{path}: {err.strerror}") from err
        if kind in KERNEL_FILESYSTEMS:
            raise FileRefused(f"{path}: on a kernel filesystem ({kind:#x})")
        try:
            fd = _reopen(path_fd)
        except OSError as err:
            raise FileRefused(f"{path}: {err.strerror}") from err
    finally:
        os.close(path_fd)
    try:
        return os.pread(fd, limit, 0)
    except OSError as err:
        raise FileRefused(f"{path}: {err.strerror}") from err
    finally:
        os.close(fd)


def lstat_in_root(root: str, path: str) -> int:
    """The mode of ``path`` inside ``root`` without following any symlink on the way.

    For a tree the container writes (its overlay's upper layer, read as a host directory):
    a symlink anywhere in ``path`` is refused (ELOOP) rather than followed, a trailing one
    is described itself, as ``lstat`` would. Raises OSError as ``lstat`` does, and
    KernelFeatureError without openat2.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = openat2(
            root_fd,
            path.lstrip("/") or ".",
            os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
            RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS,
        )
    finally:
        os.close(root_fd)
    try:
        return os.fstat(fd).st_mode
    finally:
        os.close(fd)


class FileReader:
    """Runs container file work on ``workers`` daemon threads, each call under ``deadline_s``.

    Called from the agent loop only; the loop waits at most ``deadline_s`` per call and never
    queues behind a stuck read: with every worker busy, a call is refused at once.
    Both are counted in ``counters`` (``container_read_abandoned``, ``container_read_busy``), on
    the calling thread, so the loop's counters stay single-threaded.
    Daemon threads, not an executor's: a thread stuck in the kernel must not hold the agent's
    exit (``concurrent.futures`` joins its workers at interpreter shutdown).
    """

    def __init__(
        self,
        workers: int = 2,
        deadline_s: float = 0.25,
        counters: Counters | None = None,
        *,
        scan_deadline_s: float = 1.0,
    ) -> None:
        self.deadline_s = deadline_s
        self.scan_deadline_s = scan_deadline_s
        """For scanning an executable's bytes (``exe_content``): I/O plus bounded CPU."""
        self._counters = counters if counters is not None else Counters()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = (
            queue.SimpleQueue()
        )
        self._workers = workers
        self._free = threading.BoundedSemaphore(workers)
        for index in range(workers):
            threading.Thread(
                target=self._work, name=f"container-files-{index}", daemon=True
            ).start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            work, future = job
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(work())
                    except BaseException as err:  # handed to the caller, who raises it
                        future.set_exception(err)
            finally:
                self._free.release()

    def call(self, work: Callable[[], T], deadline_s: float | None = None) -> T:
        """``work()`` on a worker; raises ReadAbandoned past the deadline or with none free.

        ``deadline_s`` overrides the reader's for work that is bounded CPU as well as I/O
        (scanning up to 16 MiB of an executable takes ~0.1 s on an idle core).
        """
        deadline = self.deadline_s if deadline_s is None else deadline_s
        if not self._free.acquire(blocking=False):
            self._counters.add("container_read_busy")
            raise ReadAbandoned("every container file reader is stuck; read skipped")
        future: Future[object] = Future()
        self._jobs.put((work, future))
        try:
            return cast(T, future.result(timeout=deadline))
        except FutureTimeout as err:
            future.cancel()
            self._counters.add("container_read_abandoned")
            raise ReadAbandoned(f"container file read exceeded {deadline}s") from err

    def close(self) -> None:
        """Let idle workers exit; one stuck in the kernel exits when its read returns."""
        for _ in range(self._workers):
            self._jobs.put(None)

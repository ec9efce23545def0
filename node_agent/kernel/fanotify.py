"""Refuse an exec before it happens with fanotify ``FAN_OPEN_EXEC_PERM`` (optional, off by default).

While a permission event is unanswered the exec blocks, so the gate is built to never hold one:

- every event read is answered, in a ``finally``, allow unless the decider said deny;
- events that waited longer than ``deadline`` before a decision are allowed unread
  (fail-open on overload), and so is everything when the queue overflows;
- the gate runs in its own thread with a bounded lifetime; closing the fanotify descriptor
  (on stop, on exit, on a crash) makes the kernel allow every pending and future exec.

It is a narrow control: ``ld.so /path/miner`` or a copy outside the marked mount is not an
exec open of the marked file, so the agent keeps its other layers regardless.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from node_agent import errors
from node_agent.kernel.attribution import Attribution

FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_CONTENT = 0x4
FAN_MARK_ADD = 0x1
FAN_MARK_MOUNT = 0x10
FAN_OPEN_EXEC_PERM = 0x40000
FAN_ALLOW = 0x1
FAN_DENY = 0x2
AT_FDCWD = -100
O_LARGEFILE = 0x8000
_META = struct.Struct("=IBBHQii")
_RESPONSE = struct.Struct("=iI")


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The decider's answer; ``reason`` is kept for the report when denying."""

    deny: bool
    reason: str = ""
    owner: Attribution | None = None
    """The cgroup (pod, container) of the process that tried the exec, when known."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """An exec the gate refused, for the agent to report."""

    pid: int
    path: str
    reason: str
    timestamp: float
    owner: Attribution | None = None


Decider = Callable[[str, int, int], GateDecision]
"""(path, descriptor on the file, pid of the process exec'ing it) -> decision."""


class ExecGate:
    """A fanotify permission listener on mounts; start() spawns its thread, stop() ends it."""

    def __init__(
        self,
        mounts: list[Path],
        decide: Decider,
        deadline: float = 0.05,
        lifetime: float | None = None,
        max_refusals: int = 1024,
    ) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.fanotify_mark.argtypes = [
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint64,
            ctypes.c_int,
            ctypes.c_char_p,
        ]
        fd = self._libc.fanotify_init(
            FAN_CLOEXEC | FAN_NONBLOCK | FAN_CLASS_CONTENT, os.O_RDONLY | O_LARGEFILE
        )
        if fd < 0:
            err = ctypes.get_errno()
            raise errors.KernelFeatureError(f"fanotify_init: {os.strerror(err)}")
        self._fd = fd
        for mount in mounts:
            try:
                self.mark(str(mount))
            except errors.KernelFeatureError:
                os.close(fd)
                raise
        self._decide = decide
        self._deadline = deadline
        self._until = None if lifetime is None else time.monotonic() + lifetime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refusals: collections.deque[Refusal] = collections.deque(maxlen=max_refusals)
        self.allowed = 0
        self.denied = 0
        self.failed_open = 0
        self.overflows = 0

    def mark(self, path: str) -> None:
        """Gate execs from the mount ``path`` is on; raises KernelFeatureError.

        For a container, ``/proc/PID/root`` names its root mount from the host, in whatever
        mount namespace the container has. Marking a mount twice is harmless; a mark goes
        away with its mount.
        """
        rc = self._libc.fanotify_mark(
            self._fd, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_EXEC_PERM, AT_FDCWD, path.encode()
        )
        if rc != 0:
            err = ctypes.get_errno()
            raise errors.KernelFeatureError(f"fanotify_mark {path}: {os.strerror(err)}")

    def start(self) -> None:
        """Run the listener in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="mg-exec-gate", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening; the kernel then allows everything."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._until is not None and time.monotonic() >= self._until:
                    break
                if not select.select([self._fd], [], [], 0.2)[0]:
                    continue
                self._drain()
        finally:
            os.close(self._fd)

    def _drain(self) -> None:
        try:
            buf = os.read(self._fd, 64 * _META.size * 4)
        except BlockingIOError:
            return
        started = time.monotonic()
        offset = 0
        while offset + _META.size <= len(buf):
            length, _ver, _res, _mlen, _mask, efd, pid = _META.unpack_from(buf, offset)
            offset += max(length, _META.size)
            if efd < 0:
                self.overflows += 1
                continue
            verdict = FAN_ALLOW
            try:
                if time.monotonic() - started > self._deadline:
                    self.failed_open += 1
                else:
                    verdict = self._judge(efd, pid)
            finally:
                with contextlib.suppress(OSError):
                    os.write(self._fd, _RESPONSE.pack(efd, verdict))
                os.close(efd)

    def _judge(self, efd: int, pid: int) -> int:
        try:
            path = str(Path(f"/proc/self/fd/{efd}").readlink())
            decision = self._decide(path, efd, pid)
        except Exception:  # the gate must answer whatever the decider does
            self.failed_open += 1
            return FAN_ALLOW
        if not decision.deny:
            self.allowed += 1
            return FAN_ALLOW
        self.denied += 1
        self.refusals.append(Refusal(pid, path, decision.reason, time.time(), decision.owner))
        return FAN_DENY

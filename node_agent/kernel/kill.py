"""Kill a process through a pidfd, so a PID reused by an innocent process is never hit.

The pidfd is opened first, then the process's start time is read again: if it differs from
the one the detection saw, the PID now belongs to someone else and nothing is sent. Once the
pidfd is open it refers to that exact process, whatever happens to the number.

``kill_tree`` takes the process's descendants with it (miners fork watchdogs that restart
them): every one is held by a pidfd checked the same way, all are stopped first (SIGSTOP, so
none can fork or restart another meanwhile), then all are killed.
"""

from __future__ import annotations

import enum
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

from node_agent import errors
from node_agent.kernel.procfs import ProcFS


class KillOutcome(enum.Enum):
    """What happened to a kill request."""

    KILLED = "killed"
    GONE = "gone"
    REUSED = "pid-reused"
    DENIED = "denied"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class KillResult:
    """The outcome and how long the kill took."""

    outcome: KillOutcome
    detail: str = ""


def _open_same(proc: ProcFS, pid: int, start_ticks: int) -> int | KillResult:
    """A pidfd on (pid, start_ticks), or why there is none (gone, reused, denied)."""
    if not hasattr(os, "pidfd_open"):
        return KillResult(KillOutcome.UNSUPPORTED, "os.pidfd_open missing (Linux >= 5.3)")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return KillResult(KillOutcome.GONE)
    except OSError as err:
        return KillResult(KillOutcome.DENIED, str(err))
    try:
        current = proc.stat(pid).start_ticks
    except errors.ProcessGone:
        found: KillResult | None = KillResult(KillOutcome.GONE)
    except errors.AgentError as err:
        found = KillResult(KillOutcome.DENIED, str(err))
    else:
        found = None
        if current != start_ticks:
            found = KillResult(KillOutcome.REUSED, f"start {current} != {start_ticks}")
    if found is not None:
        os.close(pidfd)
        return found
    return pidfd


def _send(pidfd: int, sig: int) -> KillResult | None:
    """Send ``sig`` through ``pidfd``: None once sent, else why not."""
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        return KillResult(KillOutcome.GONE)
    except OSError as err:
        return KillResult(KillOutcome.DENIED, str(err))
    return None


def kill(proc: ProcFS, pid: int, start_ticks: int, sig: int = signal.SIGKILL) -> KillResult:
    """Send ``sig`` to the process (pid, start_ticks) and only to it."""
    pidfd = _open_same(proc, pid, start_ticks)
    if isinstance(pidfd, KillResult):
        return pidfd
    try:
        return _send(pidfd, sig) or KillResult(KillOutcome.KILLED)
    finally:
        os.close(pidfd)


MAX_DESCENDANTS = 256


def descendants(proc: ProcFS, pid: int, limit: int = MAX_DESCENDANTS) -> list[tuple[int, int]]:
    """(pid, start ticks) of every live descendant of ``pid``, parents before children.

    One pass over /proc (a few ms on a busy node; only done to kill); bounded by ``limit``.
    """
    children: dict[int, list[tuple[int, int]]] = {}
    try:
        pids = proc.pids()
    except errors.AgentError:
        return []
    for other in pids:
        try:
            st = proc.stat(other)
        except errors.AgentError:
            continue
        children.setdefault(st.ppid, []).append((other, st.start_ticks))
    found: list[tuple[int, int]] = []
    queue = [pid]
    while queue and len(found) < limit:
        for child in children.get(queue.pop(0), []):
            if len(found) >= limit:
                break
            found.append(child)
            queue.append(child[0])
    return found


def _held(proc: ProcFS, targets: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """(pid, pidfd) for each target still the same process; the caller closes the fds."""
    for pid, start in targets:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            same = proc.stat(pid).start_ticks == start
        except errors.AgentError:
            same = False
        if not same:
            os.close(fd)
            continue
        yield pid, fd


def kill_tree(proc: ProcFS, pid: int, start_ticks: int) -> KillResult:
    """Kill (pid, start_ticks) and its descendants: stop them all, then kill them all."""
    pidfd = _open_same(proc, pid, start_ticks)
    if isinstance(pidfd, KillResult):
        return pidfd
    held: list[tuple[int, int]] = []
    try:
        stopped = _send(pidfd, signal.SIGSTOP)
        if stopped is not None:
            return stopped
        for _ in range(3):  # a child not yet stopped may have forked during the scan
            known = {c for c, _ in held}
            new = [t for t in descendants(proc, pid) if t[0] not in known]
            if not new:
                break
            for child, fd in _held(proc, new):
                _signal(fd, signal.SIGSTOP)
                held.append((child, fd))
        failed = _send(pidfd, signal.SIGKILL)
        if failed is not None:
            return failed
        killed = sum(_signal(fd, signal.SIGKILL) for _child, fd in held)
        detail = f"and {killed} descendant(s): {[c for c, _ in held][:8]}" if held else ""
        return KillResult(KillOutcome.KILLED, detail)
    finally:
        for _child, fd in held:
            os.close(fd)
        os.close(pidfd)


def _signal(fd: int, sig: int) -> bool:
    try:
        signal.pidfd_send_signal(fd, sig)
    except OSError:
        return False
    return True

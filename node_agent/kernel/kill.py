"""Kill a process through a pidfd, so a PID reused by an innocent process is never hit.

The pidfd is opened first, then the process's start time is read again: if it differs from
the one the detection saw, the PID now belongs to someone else and nothing is sent. Once the
pidfd is open it refers to that exact process, whatever happens to the number.
"""

from __future__ import annotations

import enum
import os
import signal
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


def kill(proc: ProcFS, pid: int, start_ticks: int, sig: int = signal.SIGKILL) -> KillResult:
    """Send ``sig`` to the process (pid, start_ticks) and only to it."""
    if not hasattr(os, "pidfd_open"):
        return KillResult(KillOutcome.UNSUPPORTED, "os.pidfd_open missing (Linux >= 5.3)")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return KillResult(KillOutcome.GONE)
    except OSError as err:
        return KillResult(KillOutcome.DENIED, str(err))
    try:
        try:
            current = proc.stat(pid).start_ticks
        except errors.ProcessGone:
            return KillResult(KillOutcome.GONE)
        except errors.AgentError as err:
            return KillResult(KillOutcome.DENIED, str(err))
        if current != start_ticks:
            return KillResult(KillOutcome.REUSED, f"start {current} != {start_ticks}")
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            return KillResult(KillOutcome.GONE)
        except OSError as err:
            return KillResult(KillOutcome.DENIED, str(err))
        return KillResult(KillOutcome.KILLED)
    finally:
        os.close(pidfd)

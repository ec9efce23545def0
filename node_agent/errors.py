"""Errors the agent raises at the kernel boundary.

Reading /proc and cgroupfs races with processes and containers coming and going. Those races
are normal, so they are typed (``ProcessGone``, ``CgroupGone``) and callers turn them into
counters, never into tracebacks.
"""

from __future__ import annotations

import errno

from minerguard.errors import MinerguardError


class AgentError(MinerguardError):
    """Base of the node agent's own errors."""


class ProcessGone(AgentError):
    """The process exited (or its PID was reused) while it was being read."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"process {pid} is gone")
        self.pid = pid


class AccessDenied(AgentError):
    """The kernel refused to show part of a process (ptrace rules, hidepid, LSM)."""

    def __init__(self, pid: int, what: str) -> None:
        super().__init__(f"access to {what} of process {pid} denied")
        self.pid = pid
        self.what = what


class CgroupGone(AgentError):
    """The cgroup was removed while it was being read."""

    def __init__(self, path: str) -> None:
        super().__init__(f"cgroup {path} is gone")
        self.path = path


class KernelFeatureError(AgentError):
    """A kernel interface (proc connector, fanotify, pidfd) cannot be used here."""


GONE_ERRNOS = frozenset({errno.ENOENT, errno.ESRCH, errno.ENOTDIR})
DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def process_error(pid: int, what: str, err: OSError) -> AgentError | None:
    """Map an OSError from /proc/PID/<what> to a domain error; None when it is unexpected."""
    if err.errno in GONE_ERRNOS:
        return ProcessGone(pid)
    if err.errno in DENIED_ERRNOS:
        return AccessDenied(pid, what)
    return None

"""Exec, fork and exit events from the kernel's proc connector (netlink), in pure Python.

Needs CAP_NET_ADMIN and the initial network namespace (hostNetwork on Kubernetes); PIDs are
init-namespace PIDs (hostPID). On kernels that support it the subscription carries an event
mask, so the kernel does not send the UID/GID/comm/ptrace events the agent ignores. FORK
events for threads (pid != tgid) are dropped here. ENOBUFS means the kernel dropped events:
that is counted, and the caller's /proc rescan closes the gap. Reads are batched: after the
first datagram, ``batch_window`` (10 ms) passes before the queue is drained.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
import time

from node_agent import errors
from node_agent.events import EventKind, ProcEvent

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
NLMSG_DONE = 3
SO_RCVBUFFORCE = 33
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x1
PROC_EVENT_EXEC = 0x2
PROC_EVENT_EXIT = 0x80000000

_NL = struct.Struct("=IHHII")
_CN = struct.Struct("=IIIIHH")
_EV = struct.Struct("=IIQ")
_FORK = struct.Struct("=4I")
_EXEC = struct.Struct("=2I")
_EXIT = struct.Struct("=4I")


def parse_messages(data: bytes) -> tuple[list[ProcEvent], int]:
    """Decode a netlink datagram into events; returns (events, thread forks skipped)."""
    out: list[ProcEvent] = []
    skipped = 0
    offset = 0
    header = _NL.size + _CN.size
    while offset + header + _EV.size <= len(data):
        length = _NL.unpack_from(data, offset)[0]
        if length < header:
            break
        base = offset + header
        what, _cpu, ts = _EV.unpack_from(data, base)
        body = base + _EV.size
        if what == PROC_EVENT_FORK and body + _FORK.size <= len(data):
            _ppid, ptgid, pid, tgid = _FORK.unpack_from(data, body)
            if pid == tgid:
                out.append(ProcEvent(EventKind.FORK, pid=tgid, timestamp_ns=ts, parent=ptgid))
            else:
                skipped += 1
        elif what == PROC_EVENT_EXEC and body + _EXEC.size <= len(data):
            _pid, tgid = _EXEC.unpack_from(data, body)
            out.append(ProcEvent(EventKind.EXEC, pid=tgid, timestamp_ns=ts))
        elif what == PROC_EVENT_EXIT and body + _EXIT.size <= len(data):
            pid, tgid, code, _sig = _EXIT.unpack_from(data, body)
            if pid == tgid:
                out.append(ProcEvent(EventKind.EXIT, pid=tgid, timestamp_ns=ts, exit_code=code))
        offset += (length + 3) & ~3
    return out, skipped


def _control(op: bytes, seq: int) -> bytes:
    cn = _CN.pack(CN_IDX_PROC, CN_VAL_PROC, seq, 0, len(op), 0) + op
    return _NL.pack(_NL.size + len(cn), NLMSG_DONE, 0, seq, os.getpid()) + cn


class ProcConnector:
    """An ``EventSource`` over NETLINK_CONNECTOR; raises KernelFeatureError when unusable."""

    def __init__(
        self, buffer_bytes: int = 8 << 20, want_fork: bool = True, batch_window: float = 0.01
    ) -> None:
        mask = PROC_EVENT_EXEC | PROC_EVENT_EXIT | (PROC_EVENT_FORK if want_fork else 0)
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except OSError as err:
            raise errors.KernelFeatureError(f"proc connector socket: {err}") from err
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            sock.bind((0, CN_IDX_PROC))
            # kernels >= 6.6 take (op, mask) and filter in the kernel; older ones read op only
            sock.send(_control(struct.pack("=II", PROC_CN_MCAST_LISTEN, mask), 1))
        except OSError as err:
            sock.close()
            raise errors.KernelFeatureError(
                f"proc connector subscribe (needs CAP_NET_ADMIN, host netns): {err}"
            ) from err
        sock.setblocking(False)
        self._sock = sock
        self._dropped = 0
        self._batch_window = batch_window
        self.thread_forks = 0

    @property
    def dropped(self) -> int:
        """Overruns reported by the kernel (each may stand for many events)."""
        return self._dropped

    def fileno(self) -> int | None:
        """The netlink socket, for select()."""
        return self._sock.fileno()

    def poll(self, timeout: float) -> list[ProcEvent]:
        """Drain what is queued, waiting up to ``timeout`` for the first datagram."""
        if timeout > 0 and not select.select([self._sock], [], [], timeout)[0]:
            return []
        if self._batch_window > 0:
            # Let a burst accumulate: one wake-up per window instead of one per datagram,
            # and an EXEC whose EXIT lands in the same batch is never read at all.
            time.sleep(self._batch_window)
        events: list[ProcEvent] = []
        for _ in range(4096):
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    self._dropped += 1
                    continue
                raise errors.KernelFeatureError(f"proc connector recv: {err}") from err
            parsed, skipped = parse_messages(data)
            self.thread_forks += skipped
            events.extend(parsed)
        return events

    def close(self) -> None:
        """Unsubscribe and close the socket."""
        with contextlib.suppress(OSError):  # the socket is going away anyway
            self._sock.send(_control(struct.pack("=I", PROC_CN_MCAST_IGNORE), 2))
        self._sock.close()

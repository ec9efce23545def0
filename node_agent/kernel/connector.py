"""Exec, fork and exit events from the kernel's proc connector (netlink), in pure Python.

Needs CAP_NET_ADMIN and the initial network namespace (hostNetwork on Kubernetes); PIDs are
init-namespace PIDs (hostPID). On kernels that support it the subscription carries an event
mask, so the kernel does not send the UID/GID/comm/ptrace events the agent ignores. FORK
events for threads (pid != tgid) are dropped here. ENOBUFS means the kernel dropped events:
that is counted, and the caller's /proc rescan closes the gap. Reads are batched: after the
first datagram, ``batch_window`` (10 ms) passes before the queue is drained, 64 datagrams per
recvmmsg(2) call.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import socket
import struct
import time

from node_agent import errors
from node_agent.kernel.events import EventKind, ProcEvent

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
# nlmsghdr.len, then (past the rest of nlmsghdr, cn_msg and proc_event.cpu) what, timestamp and
# the first four u32 of the event union. The kernel always sends the whole proc_event (its
# union is 24 bytes), so every datagram holds these 68 bytes.
_MESSAGE = struct.Struct("=I32xIxxxxQ4I")
_HEADER_LEN = _NL.size + _CN.size + 16
SLOT_SIZE = 256  # recvmmsg slot per datagram; a proc connector datagram is 76 bytes
_SLOT = struct.Struct(f"{_MESSAGE.format}{SLOT_SIZE - _MESSAGE.size}x")
FORK, EXEC, EXIT = EventKind.FORK, EventKind.EXEC, EventKind.EXIT


def decode(slots: bytes | memoryview) -> tuple[list[ProcEvent], int]:
    """Events from consecutive recvmmsg slots, one datagram each; also thread forks skipped.

    The hot loop of a busy node (three datagrams per process): the kernel sends one message
    per datagram, so every slot is decoded in C by one ``iter_unpack``. A slot whose netlink
    length is short of a whole proc_event is skipped.
    """
    out: list[ProcEvent] = []
    skipped = 0
    for length, what, ts, a, b, c, d in _SLOT.iter_unpack(slots):
        if length < _HEADER_LEN:
            continue
        if what == PROC_EVENT_FORK:  # parent pid, parent tgid, child pid, child tgid
            if c == d:
                out.append(ProcEvent(FORK, d, ts, b))
            else:
                skipped += 1
        elif what == PROC_EVENT_EXEC:  # pid, tgid
            out.append(ProcEvent(EXEC, b, ts))
        elif what == PROC_EVENT_EXIT and a == b:  # pid, tgid, exit code, signal
            out.append(ProcEvent(EXIT, b, ts, None, c))
    return out, skipped


class _IoVec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(_IoVec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("hdr", _MsgHdr), ("len", ctypes.c_uint))


class _Receiver:
    """recvmmsg(2): up to ``slots`` datagrams per system call into one reused buffer.

    One datagram per event and three events per process make recv() per datagram the
    agent's main cost on a busy node; this cuts the calls (and Python work) ~64-fold.
    """

    def __init__(self, slots: int = 64) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._call = libc.recvmmsg
        self._call.argtypes = (
            ctypes.c_int, ctypes.POINTER(_MMsgHdr), ctypes.c_uint, ctypes.c_int, ctypes.c_void_p
        )  # fmt: skip
        self._call.restype = ctypes.c_int
        self.buffer = ctypes.create_string_buffer(slots * SLOT_SIZE)
        self._iov = (_IoVec * slots)()
        self._msgs = (_MMsgHdr * slots)()
        base = ctypes.addressof(self.buffer)
        for i in range(slots):
            self._iov[i].base = base + i * SLOT_SIZE
            self._iov[i].len = SLOT_SIZE
            self._msgs[i].hdr.iov = ctypes.pointer(self._iov[i])
            self._msgs[i].hdr.iovlen = 1
        self.slots = slots

    def receive(self, fd: int) -> int:
        """Datagrams now in the buffer (slot i at ``i * SLOT_SIZE``); 0 when none are queued."""
        count: int = self._call(fd, self._msgs, self.slots, socket.MSG_DONTWAIT, None)
        if count >= 0:
            return count
        err = ctypes.get_errno()
        if err in (errno.EAGAIN, errno.EWOULDBLOCK):
            return 0
        raise OSError(err, os.strerror(err))


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
        try:
            self._receiver = _Receiver()
        except AttributeError as err:  # a libc without recvmmsg
            sock.close()
            raise errors.KernelFeatureError(f"recvmmsg: {err}") from err

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
        receiver = self._receiver
        view = memoryview(receiver.buffer)
        for _ in range(256):
            try:
                count = receiver.receive(self._sock.fileno())
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    self._dropped += 1
                    continue
                raise errors.KernelFeatureError(f"proc connector recv: {err}") from err
            parsed, skipped = decode(view[: count * SLOT_SIZE])
            self.thread_forks += skipped
            events.extend(parsed)
            if count < receiver.slots:
                break
        return events

    def close(self) -> None:
        """Unsubscribe and close the socket."""
        with contextlib.suppress(OSError):  # the socket is going away anyway
            self._sock.send(_control(struct.pack("=I", PROC_CN_MCAST_IGNORE), 2))
        self._sock.close()

"""Per-process TCP connections from /proc/PID/net/tcp{,6} and the process's socket inodes.

/proc/PID/net/tcp is the table of the process's own network namespace (a pod's), which the
host table does not show. Sockets are matched to the process by inode, so a connection is
attributed to the process that holds it, not merely to its namespace.
"""

from __future__ import annotations

import socket
import struct

from node_agent import errors
from node_agent.kernel.procfs import ProcFS
from node_agent.records import TCP_LISTEN, Connection


def decode_address(hex_address: str) -> str:
    """Decode a /proc/net/tcp{,6} address: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = struct.unpack("<4I", raw)
    packed = struct.pack(">4I", *words)
    address = socket.inet_ntop(socket.AF_INET6, packed)
    if address.startswith("::ffff:") and "." in address:
        return address[7:]  # v4-mapped: show the IPv4 address
    return address


def parse_table(text: str, wanted: dict[int, int] | None = None) -> list[Connection]:
    """Parse a tcp/tcp6 table; keep only sockets whose inode is in ``wanted`` when given."""
    out: list[Connection] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            inode = int(fields[9])
            if wanted is not None and inode not in wanted:
                continue
            local, lport = fields[1].split(":")
            remote, rport = fields[2].split(":")
            out.append(
                Connection(
                    local_address=decode_address(local),
                    local_port=int(lport, 16),
                    remote_address=decode_address(remote),
                    remote_port=int(rport, 16),
                    state=int(fields[3], 16),
                    inode=inode,
                )
            )
        except (ValueError, OSError):
            continue
    return out


def connections(proc: ProcFS, pid: int) -> list[Connection]:
    """TCP connections held by ``pid``; ProcessGone/AccessDenied propagate to the caller."""
    inodes = proc.socket_inodes(pid)
    if not inodes:
        return []
    found: list[Connection] = []
    for table in ("tcp", "tcp6"):
        try:
            text = proc.net_file(pid, table)
        except errors.ProcessGone:
            raise
        except errors.AgentError:
            continue  # tcp6 absent when IPv6 is disabled
        found.extend(parse_table(text, inodes))
    return found


def outbound(conns: list[Connection]) -> list[Connection]:
    """Established connections that the process opened (its local port is not listening)."""
    listening = {c.local_port for c in conns if c.state == TCP_LISTEN}
    return [c for c in conns if c.established and c.local_port not in listening]

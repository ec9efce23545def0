"""New connections as the kernel's connection tracker reports them (ctnetlink NEW events).

Chosen over ``sock_diag``: sock_diag answers dumps (one per network namespace, polled) and
multicasts only socket *destruction* (``SKNLGRP_INET_TCP_DESTROY``), so a connection that lives
50 ms between two polls is never seen, and polling every pod's namespace often enough costs a
dump per pod per tick. Conntrack sees pod traffic where the host routes it (veth, bridge) in
the host's own namespace and pushes one event per new flow as the first packet is confirmed,
with the original tuple (the pod's address and port) before any NAT.

Pure Python over ``NETLINK_NETFILTER``: the header and attributes are decoded with ``struct``;
the common IPv4/IPv6 layout is read at fixed offsets after checking the attribute types, other
layouts go through the generic attribute walk. The tracker only runs in a namespace where
something uses it (kube-proxy, a CNI, or the agent's own table, whose rules use ``ct``).
Overruns (``ENOBUFS``: events lost because the buffer was full) are counted, never fatal.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from node_agent import errors
from node_agent.kernel import cbpf
from node_agent.kernel.cbpf import JEQ_K, LD_B_ABS, LD_H_ABS, LD_W_ABS, RET_K, Insn

NETLINK_NETFILTER = 12
NFNLGRP_CONNTRACK_NEW = 1
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW = 0
NLMSG_HDR = struct.Struct("=IHHII")
NLA_HDR = struct.Struct("=HH")
NLA_TYPE_MASK = 0x3FFF
CTA_TUPLE_ORIG = 1
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_IP_V4_SRC = 1
CTA_IP_V4_DST = 2
CTA_IP_V6_SRC = 3
CTA_IP_V6_DST = 4
CTA_PROTO_NUM = 1
CTA_PROTO_SRC_PORT = 2
CTA_PROTO_DST_PORT = 3
SO_RCVBUFFORCE = 33
MAX_ATTRS = 64
IPV4_LAYOUT = struct.Struct("<HHHHHH4sHH4sHHHHB3xHH2s2xHH2s")
"""The kernel's usual IPv4 NEW event from the original tuple on: every header, then values."""
IPV4_TYPES = (1, 1, 20, 1, 8, 1, 8, 2, 2, 1, 2, 3)
"""The attribute types and lengths ``IPV4_LAYOUT`` must find (nested flags masked)."""


@dataclass(frozen=True, slots=True)
class Flow:
    """A new flow's original direction: who opened it, to where, over which protocol."""

    protocol: int
    src: str
    sport: int
    dst: str
    dport: int


def _attrs(data: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """Attribute type → (payload start, end) of the attributes in ``data[start:end]``."""
    found: dict[int, tuple[int, int]] = {}
    pos = start
    for _ in range(MAX_ATTRS):
        if pos + 4 > end:
            break
        length, kind = NLA_HDR.unpack_from(data, pos)
        if length < 4 or pos + length > end:
            break
        found.setdefault(kind & NLA_TYPE_MASK, (pos + 4, pos + length))
        pos += (length + 3) & ~3
    return found


def _address(data: bytes, span: tuple[int, int] | None) -> str | None:
    if span is None:
        return None
    raw = data[span[0] : span[1]]
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return None


def _fast_ipv4(data: bytes, start: int, end: int) -> Flow | None:
    """The usual IPv4 layout read with one unpack, after checking every attribute header."""
    if end - start < 4 + IPV4_LAYOUT.size or data[start] != socket.AF_INET:
        return None
    (
        _orig_len,
        orig,
        ip_len,
        ip_type,
        src_len,
        src_type,
        src,
        dst_len,
        dst_type,
        dst,
        _proto_len,
        proto_type,
        _num_len,
        num_type,
        num,
        _sp_len,
        sp_type,
        sport,
        _dp_len,
        dp_type,
        dport,
    ) = IPV4_LAYOUT.unpack_from(data, start + 4)
    found = (
        orig & NLA_TYPE_MASK,
        ip_type & NLA_TYPE_MASK,
        ip_len,
        src_type,
        src_len,
        src_type,
        dst_len,
        dst_type,
        proto_type & NLA_TYPE_MASK,
        num_type,
        sp_type,
        dp_type,
    )
    if found != IPV4_TYPES:
        return None
    return Flow(
        num,
        socket.inet_ntop(socket.AF_INET, src),
        int.from_bytes(sport, "big"),
        socket.inet_ntop(socket.AF_INET, dst),
        int.from_bytes(dport, "big"),
    )


def parse_new(data: bytes, start: int, end: int) -> Flow | None:
    """The flow of one ctnetlink NEW message body (after the netlink header); None if odd."""
    fast = _fast_ipv4(data, start, end)
    if fast is not None:
        return fast
    top = _attrs(data, start + 4, end)  # skip struct nfgenmsg
    orig = top.get(CTA_TUPLE_ORIG)
    if orig is None:
        return None
    tuple_attrs = _attrs(data, *orig)
    ip_span, proto_span = tuple_attrs.get(CTA_TUPLE_IP), tuple_attrs.get(CTA_TUPLE_PROTO)
    if ip_span is None or proto_span is None:
        return None
    ips = _attrs(data, *ip_span)
    src = _address(data, ips.get(CTA_IP_V4_SRC) or ips.get(CTA_IP_V6_SRC))
    dst = _address(data, ips.get(CTA_IP_V4_DST) or ips.get(CTA_IP_V6_DST))
    proto = _attrs(data, *proto_span)
    num = proto.get(CTA_PROTO_NUM)
    if src is None or dst is None or num is None or num[1] - num[0] < 1:
        return None
    sport_span, dport_span = proto.get(CTA_PROTO_SRC_PORT), proto.get(CTA_PROTO_DST_PORT)
    sport = struct.unpack_from("!H", data, sport_span[0])[0] if sport_span else 0
    dport = struct.unpack_from("!H", data, dport_span[0])[0] if dport_span else 0
    return Flow(data[num[0]], src, sport, dst, dport)


IPV4_HEADER_CHECKS = ((22, 0x0180), (26, 0x0180), (30, 0x0100), (38, 0x0200), (46, 0x0280))
"""(offset, big-endian halfword) of the attribute types ``IPV4_LAYOUT`` expects (from the
netlink header): the original tuple, its IP and address attributes, its protocol attributes."""
IPV4_PORT_CHECKS = ((50, 0x0100), (58, 0x0200), (66, 0x0300))
ACCEPT = 0xFFFF


def interest_filter(ports: Iterable[int], addresses: Iterable[str]) -> bytes:
    """A socket filter passing only the NEW events the layer can use, decided in the kernel.

    IPv4 events in the usual layout pass when their destination port is a pool port or their
    destination address a learned pool address; others of that layout are dropped before they
    are queued (a node opening 10,000 benign connections a second costs the agent nothing).
    Events in any other layout (IPv6, attributes in another order) pass, for the generic
    decoder. Too many addresses for one program: every event passes.
    """
    port_list = sorted({p for p in ports if 0 < p < 65536})
    address_list = sorted({a for a in addresses if a.count(".") == 3})
    program = [Insn(LD_B_ABS, 16), Insn(JEQ_K, socket.AF_INET, 1, 0), Insn(RET_K, ACCEPT)]
    for offset, value in IPV4_HEADER_CHECKS + IPV4_PORT_CHECKS:
        program += [Insn(LD_H_ABS, offset), Insn(JEQ_K, value, 1, 0), Insn(RET_K, ACCEPT)]
    program += [Insn(LD_B_ABS, 52), Insn(JEQ_K, 6, 2, 0), Insn(JEQ_K, 17, 1, 0), Insn(RET_K, 0)]
    program.append(Insn(LD_H_ABS, 68))
    for port in port_list:
        program += [Insn(JEQ_K, port, 0, 1), Insn(RET_K, ACCEPT)]
    if len(program) + 2 * len(address_list) + 2 > cbpf.MAX_INSNS:
        return cbpf.assemble([Insn(RET_K, ACCEPT)])
    program.append(Insn(LD_W_ABS, 40))
    for address in address_list:
        value = int.from_bytes(socket.inet_aton(address), "big")
        program += [Insn(JEQ_K, value, 0, 1), Insn(RET_K, ACCEPT)]
    program.append(Insn(RET_K, 0))
    return cbpf.assemble(program)


def parse_messages(data: bytes) -> list[Flow]:
    """Every NEW flow in one netlink datagram (other messages and broken ones are skipped)."""
    flows: list[Flow] = []
    pos = 0
    size = len(data)
    new_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW
    while pos + 16 <= size:
        length, kind, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, pos)
        if length < 16 or pos + length > size:
            break
        if kind == new_type:
            flow = parse_new(data, pos + 16, pos + length)
            if flow is not None:
                flows.append(flow)
        pos += (length + 3) & ~3
    return flows


class ConntrackEvents:
    """A netlink socket subscribed to the host namespace's conntrack NEW events."""

    def __init__(self, rcvbuf: int = 8 << 20) -> None:
        self.overruns = 0
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as err:
            raise errors.KernelFeatureError(f"ctnetlink: {err}") from err
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((0, 1 << (NFNLGRP_CONNTRACK_NEW - 1)))
            sock.setblocking(False)
        except OSError as err:
            sock.close()
            why = f"ctnetlink events: {err} (needs CAP_NET_ADMIN)"
            raise errors.KernelFeatureError(why) from err
        self._sock = sock

    def fileno(self) -> int:
        """The socket, for select()."""
        return self._sock.fileno()

    def interest(self, ports: Iterable[int], addresses: Iterable[str]) -> None:
        """Let the kernel pass only events to ``ports`` or ``addresses`` (see interest_filter)."""
        try:
            cbpf.attach(self._sock, interest_filter(ports, addresses))
        except OSError as err:
            raise errors.KernelFeatureError(f"ctnetlink filter: {err}") from err

    def read(self, budget: int = 256) -> list[Flow]:
        """Flows from up to ``budget`` queued datagrams, without waiting."""
        flows: list[Flow] = []
        recv = self._sock.recv
        for _ in range(budget):
            try:
                data = recv(65536)
            except BlockingIOError:
                break
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    self.overruns += 1  # the kernel dropped events; keep reading
                    continue
                raise errors.KernelFeatureError(f"ctnetlink: {err}") from err
            flows.extend(parse_messages(data))
        return flows

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

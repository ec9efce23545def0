"""Builders of DNS messages, IP packets and ClientHellos for the network layer's tests."""

from __future__ import annotations

import socket
import struct


def name(text: str) -> bytes:
    """A DNS name in wire form (no compression)."""
    out = b""
    for label in text.rstrip(".").split("."):
        raw = label.encode()
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def dns_answer(
    question: str,
    answers: list[tuple[str, int, str]],
    *,
    ident: int = 0x1234,
    ttl: int = 300,
    compress: bool = True,
) -> bytes:
    """A response to ``question``: ``answers`` are (owner, type, value) with type 1, 28 or 5."""
    header = struct.pack("!HHHHHH", ident, 0x8180, 1, len(answers), 0, 0)
    body = name(question) + struct.pack("!HH", 1, 1)
    for owner, rtype, value in answers:
        owner_wire = b"\xc0\x0c" if compress and owner == question else name(owner)
        if rtype == 1:
            rdata = socket.inet_pton(socket.AF_INET, value)
        elif rtype == 28:
            rdata = socket.inet_pton(socket.AF_INET6, value)
        else:
            rdata = name(value)
        body += owner_wire + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata
    return header + body


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 UDP packet (checksums zero)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0,
        64,
        socket.IPPROTO_UDP,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header + udp


def ipv4_tcp(
    src: str, dst: str, sport: int, dport: int, payload: bytes, flags: int = 0x18
) -> bytes:
    """An IPv4 TCP segment (PSH|ACK by default)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, flags, 65535, 0, 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(tcp),
        0,
        0,
        64,
        socket.IPPROTO_TCP,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header + tcp


def client_hello(server_name: str | None) -> bytes:
    """A minimal TLS 1.2 ClientHello record, with an SNI extension when a name is given."""
    extensions = b""
    if server_name is not None:
        raw = server_name.encode()
        entry = b"\x00" + struct.pack("!H", len(raw)) + raw
        sni = struct.pack("!H", len(entry)) + entry
        extensions += struct.pack("!HH", 0, len(sni)) + sni
    extensions += struct.pack("!HH", 0x000B, 2) + b"\x01\x00"  # ec_point_formats
    body = (
        b"\x03\x03"
        + bytes(32)
        + b"\x00"
        + struct.pack("!H", 2)
        + b"\x13\x01"
        + b"\x01\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake

"""What network bytes say about mining: pure decoders and matchers for the network layer.

Everything here reads bytes a hostile pod chose (its DNS answers, its first TCP payload), so
every decoder is bounded: a DNS name has at most 255 characters and follows at most
``MAX_POINTER_JUMPS`` compression pointers, at most ``MAX_RECORDS`` records are read, a first
payload is inspected for at most ``MAX_FIRST_BYTES`` bytes, and malformed input raises
:class:`DecodeError` (or answers None), never anything else.

Names are compared in one form: lower case, no trailing dot, IDNA (punycode) labels, so a
policy's ``пул.example`` matches the ``xn--...`` a resolver sends, and ``POOL.Example.`` matches
``pool.example``. A pool domain matches itself and every name below it (``supportxmr.com``
covers ``pool.supportxmr.com``), never a name that merely ends in the same letters
(``notsupportxmr.com``).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

MAX_NAME = 255
MAX_LABELS = 128
MAX_POINTER_JUMPS = 16
MAX_RECORDS = 64
MAX_FIRST_BYTES = 4096
TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28


class DecodeError(ValueError):
    """Bytes that are not what they claim to be (truncated, looping, oversized)."""


def normalise_domain(text: str) -> str | None:
    """``text`` as DNS compares it (lower case, punycode, no trailing dot); None if invalid."""
    name = text.strip().rstrip(".").lower()
    if not name or len(name) > MAX_NAME:
        return None
    if name.isascii():
        return name
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return ascii_name.lower() if len(ascii_name) <= MAX_NAME else None


class DomainMatcher:
    """Pool domains with suffix rules: a domain covers itself and every name below it."""

    __slots__ = ("_domains",)

    def __init__(self, domains: Iterable[str]) -> None:
        found = (normalise_domain(d) for d in domains)
        self._domains = frozenset(d for d in found if d)

    def __len__(self) -> int:
        """How many domains are matched."""
        return len(self._domains)

    @property
    def domains(self) -> frozenset[str]:
        """The normalised domains."""
        return self._domains

    def match(self, name: str) -> str | None:
        """The pool domain ``name`` falls under, or None (at most ``MAX_LABELS`` lookups)."""
        if not self._domains:
            return None
        normal = normalise_domain(name)
        if normal is None:
            return None
        labels = normal.split(".")[-MAX_LABELS:]
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            if suffix in self._domains:
                return suffix
        return None


class LabelPrefilter:
    """Whether a DNS message can name a pool domain at all, decided on its raw bytes.

    Every label of every name in a message is written out literally once (compression only
    points back at labels already written), so a message naming ``x.supportxmr.com`` holds the
    length byte 10 then ``supportxmr`` somewhere, in some letter case. Searching the
    case-folded bytes for the first label of each pool domain (one regex alternation of
    literals, run in C) rejects benign answers, nearly all of them, without decoding them.
    (A resolver that sent raw UTF-8 instead of punycode labels would pass unseen: none does.)
    """

    __slots__ = ("_pattern",)

    def __init__(self, domains: Iterable[str]) -> None:
        labels = {d.split(".", 1)[0] for d in DomainMatcher(domains).domains}
        needles = sorted(bytes([len(label)]) + label.encode("ascii") for label in labels)
        self._pattern = re.compile(b"|".join(map(re.escape, needles))) if needles else None

    def may_match(self, data: bytes) -> bool:
        """False only when no pool domain can be named in ``data``."""
        return self._pattern is not None and self._pattern.search(data.lower()) is not None


# -- DNS ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One answer record the network layer uses: A, AAAA (an address) or CNAME (a name)."""

    name: str
    rtype: int
    ttl: int
    value: str


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """A DNS message: its id, whether it is a response, the questions and the answers."""

    ident: int
    response: bool
    rcode: int
    questions: tuple[str, ...]
    answers: tuple[DnsRecord, ...]


def _label_text(raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")  # normalised (IDNA) by the matcher


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset after it; follows bounded compression pointers."""
    labels: list[str] = []
    length_total = 0
    jumps = 0
    end: int | None = None
    pos = offset
    while True:
        if pos >= len(data):
            raise DecodeError("name runs past the message")
        size = data[pos]
        if size & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise DecodeError("truncated compression pointer")
            jumps += 1
            if jumps > MAX_POINTER_JUMPS:
                raise DecodeError("too many compression pointers")
            if end is None:
                end = pos + 2
            target = ((size & 0x3F) << 8) | data[pos + 1]
            if target >= pos:
                raise DecodeError("compression pointer does not point backwards")
            pos = target
            continue
        if size & 0xC0:
            raise DecodeError("reserved label type")
        if size == 0:
            pos += 1
            break
        label = data[pos + 1 : pos + 1 + size]
        if len(label) != size:
            raise DecodeError("truncated label")
        length_total += size + 1
        if length_total > MAX_NAME or len(labels) >= MAX_LABELS:
            raise DecodeError("name too long")
        labels.append(_label_text(label))
        pos += 1 + size
    return ".".join(labels).lower(), end if end is not None else pos


def parse_dns(data: bytes) -> DnsMessage:
    """Decode a DNS message (UDP payload, or a TCP message without its length prefix).

    Reads the questions and up to ``MAX_RECORDS`` answers; keeps A, AAAA and CNAME records.
    A message truncated inside the answers keeps those read before the cut.
    """
    if len(data) < 12:
        raise DecodeError("shorter than a DNS header")
    ident, flags, qdcount, ancount, _ns, _ar = struct.unpack_from("!HHHHHH", data)
    if qdcount > 4:
        raise DecodeError("more than 4 questions")
    pos = 12
    questions: list[str] = []
    for _ in range(qdcount):
        name, pos = read_name(data, pos)
        if pos + 4 > len(data):
            raise DecodeError("truncated question")
        pos += 4
        questions.append(name)
    answers: list[DnsRecord] = []
    for _ in range(min(ancount, MAX_RECORDS)):
        try:
            name, pos = read_name(data, pos)
        except DecodeError:
            break
        if pos + 10 > len(data):
            break
        rtype, _rclass, ttl, rdlength = struct.unpack_from("!HHIH", data, pos)
        pos += 10
        rdata = data[pos : pos + rdlength]
        if len(rdata) != rdlength:
            break
        if rtype == TYPE_A and rdlength == 4:
            answers.append(DnsRecord(name, rtype, ttl, socket.inet_ntop(socket.AF_INET, rdata)))
        elif rtype == TYPE_AAAA and rdlength == 16:
            address = socket.inet_ntop(socket.AF_INET6, rdata)
            answers.append(DnsRecord(name, rtype, ttl, address))
        elif rtype == TYPE_CNAME:
            try:
                target, _ = read_name(data, pos)
            except DecodeError:
                target = ""
            if target:
                answers.append(DnsRecord(name, rtype, ttl, target))
        pos += rdlength
    return DnsMessage(
        ident=ident,
        response=bool(flags & 0x8000),
        rcode=flags & 0x000F,
        questions=tuple(questions),
        answers=tuple(answers),
    )


@dataclass(frozen=True, slots=True)
class PoolLookup:
    """A DNS answer that names a pool domain: the name asked, the domain matched, addresses."""

    name: str
    domain: str
    addresses: tuple[str, ...]
    ttl: int

    @property
    def evidence(self) -> str:
        """``name -> a, b`` as ``Evidence.lookups`` records it."""
        shown = ", ".join(self.addresses) if self.addresses else "no address"
        return f"{self.name} -> {shown}"


def pool_lookup(message: DnsMessage, matcher: DomainMatcher) -> PoolLookup | None:
    """The pool domain a response names anywhere in its chain (question, CNAMEs), else None.

    A benign-looking name whose CNAME leads to a pool counts: the pool is what is reached.
    """
    if not message.response:
        return None
    names = list(message.questions)
    names.extend(r.name for r in message.answers)
    names.extend(r.value for r in message.answers if r.rtype == TYPE_CNAME)
    domain = next((d for d in map(matcher.match, names) if d), None)
    if domain is None:
        return None
    addresses = tuple(
        dict.fromkeys(r.value for r in message.answers if r.rtype in (TYPE_A, TYPE_AAAA))
    )
    ttls = [r.ttl for r in message.answers if r.rtype in (TYPE_A, TYPE_AAAA)]
    asked = message.questions[0] if message.questions else domain
    return PoolLookup(name=asked, domain=domain, addresses=addresses, ttl=min(ttls, default=0))


# -- packets -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Packet:
    """An IPv4/IPv6 packet's addresses, transport ports and payload (TCP or UDP)."""

    src: str
    dst: str
    protocol: int
    sport: int
    dport: int
    payload: bytes
    tcp_flags: int = 0


def parse_packet(data: bytes) -> Packet:
    """Decode an IP packet from its network header (no link layer); TCP and UDP only.

    IPv6 extension headers are not followed (the capture filter only passes packets without
    them), and IPv4 fragments other than the first carry no ports and are refused.
    """
    if not data:
        raise DecodeError("empty packet")
    version = data[0] >> 4
    if version == 4:
        if len(data) < 20:
            raise DecodeError("truncated IPv4 header")
        ihl = (data[0] & 0x0F) * 4
        total = struct.unpack_from("!H", data, 2)[0]
        if ihl < 20 or len(data) < ihl:
            raise DecodeError("bad IPv4 header length")
        if struct.unpack_from("!H", data, 6)[0] & 0x1FFF:
            raise DecodeError("not the first fragment")
        protocol = data[9]
        src = socket.inet_ntop(socket.AF_INET, data[12:16])
        dst = socket.inet_ntop(socket.AF_INET, data[16:20])
        body = data[ihl : max(min(total, len(data)), ihl)]
    elif version == 6:
        if len(data) < 40:
            raise DecodeError("truncated IPv6 header")
        length = struct.unpack_from("!H", data, 4)[0]
        protocol = data[6]
        src = socket.inet_ntop(socket.AF_INET6, data[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, data[24:40])
        body = data[40 : 40 + length]
    else:
        raise DecodeError(f"IP version {version}")
    if protocol == socket.IPPROTO_UDP:
        if len(body) < 8:
            raise DecodeError("truncated UDP header")
        sport, dport = struct.unpack_from("!HH", body)
        return Packet(src, dst, protocol, sport, dport, body[8:])
    if protocol == socket.IPPROTO_TCP:
        if len(body) < 20:
            raise DecodeError("truncated TCP header")
        sport, dport = struct.unpack_from("!HH", body)
        offset = (body[12] >> 4) * 4
        if offset < 20 or len(body) < offset:
            raise DecodeError("bad TCP data offset")
        return Packet(src, dst, protocol, sport, dport, body[offset:], tcp_flags=body[13])
    raise DecodeError(f"protocol {protocol}")


def dns_payload(packet: Packet) -> bytes:
    """The DNS message a packet carries (TCP: without its 2-byte length prefix)."""
    if packet.protocol == socket.IPPROTO_TCP:
        if len(packet.payload) < 2:
            raise DecodeError("TCP segment without a DNS message")
        size = struct.unpack_from("!H", packet.payload)[0]
        return packet.payload[2 : 2 + size]
    return packet.payload


# -- first bytes -------------------------------------------------------------------------------

MINING_METHODS = {
    "mining.subscribe": "stratum mining.subscribe",
    "mining.authorize": "stratum mining.authorize",
    "mining.submit": "stratum mining.submit",
    "mining.extranonce.subscribe": "stratum mining.extranonce.subscribe",
    "eth_submitlogin": "stratum eth_submitLogin",
    "eth_getwork": "getwork eth_getWork",
    "getwork": "getwork",
    "getblocktemplate": "getblocktemplate",
    "submitblock": "getblocktemplate submitblock",
}
"""JSON-RPC methods only miners (and pools, nodes) speak, and how evidence names them."""
_METHOD = re.compile(rb'"method"\s*:\s*"([A-Za-z_.]{1,48})"')
_AGENT = re.compile(rb'"agent"\s*:\s*"([^"\\]{1,80})"')


def _json_bodies(payload: bytes) -> Iterable[object]:
    """JSON documents at the start of the payload: the first line, or an HTTP POST's body."""
    text = payload
    if text.startswith(b"POST "):
        _head, sep, body = text.partition(b"\r\n\r\n")
        if not sep:
            return
        text = body
    line = text.split(b"\n", 1)[0].strip()
    if not line.startswith(b"{"):
        return
    try:
        yield json.loads(line)
    except (ValueError, RecursionError):
        return


def _agent_of(params: object) -> str | None:
    if isinstance(params, dict):
        agent = params.get("agent")
        if isinstance(agent, str):
            return agent[:80]
    return None


def fingerprint(payload: bytes) -> str | None:
    """The mining protocol the first bytes of a TCP flow speak, in words; None if none.

    Conclusive on any port, a local proxy included: a stratum ``mining.subscribe`` /
    ``mining.authorize``, xmrig's JSON-RPC ``login`` (with its ``agent`` string), getwork and
    getblocktemplate (plain or inside an HTTP POST). Parsed as JSON when the first line is whole
    (escapes and spacing cannot hide the method), else matched on the raw bytes.
    """
    head = payload[:MAX_FIRST_BYTES]
    for body in _json_bodies(head):
        if isinstance(body, dict):
            method = body.get("method")
            if isinstance(method, str):
                found = _describe(method, _agent_of(body.get("params")), body.get("params"))
                if found:
                    return found
        return None
    match = _METHOD.search(head)
    if match is None:
        return None
    agent = _AGENT.search(head)
    login_like = b'"login"' in head or agent is not None
    return _describe(
        match.group(1).decode("ascii"),
        agent.group(1).decode("ascii", "replace") if agent else None,
        {"login": True} if login_like else None,
    )


def _describe(method: str, agent: str | None, params: object) -> str | None:
    lowered = method.lower()
    if lowered in MINING_METHODS:
        return MINING_METHODS[lowered]
    if lowered == "login" and isinstance(params, dict) and ("login" in params or agent):
        return f"xmrig login (agent {agent})" if agent else "xmrig login"
    return None


def client_hello_sni(payload: bytes) -> str | None:
    """The server name of a TLS ClientHello in the first segment; None if absent or malformed.

    Bounded by the segment: nothing is reassembled, so a ClientHello split over segments (large
    post-quantum key shares) may show no name. With Encrypted Client Hello the outer name is
    the provider's public name, not the pool's.
    """
    try:
        return _sni(payload[: MAX_FIRST_BYTES * 4])
    except (struct.error, IndexError, UnicodeDecodeError):
        return None


def _sni(data: bytes) -> str | None:
    if len(data) < 9 or data[0] != 0x16 or data[5] != 0x01:
        return None
    pos = 9 + 2 + 32  # record header, handshake header, client_version, random
    pos += 1 + data[pos]  # session id
    suites = struct.unpack_from("!H", data, pos)[0]
    pos += 2 + suites
    pos += 1 + data[pos]  # compression methods
    if pos + 2 > len(data):
        return None
    end = min(pos + 2 + struct.unpack_from("!H", data, pos)[0], len(data))
    pos += 2
    while pos + 4 <= end:
        ext_type, ext_len = struct.unpack_from("!HH", data, pos)
        pos += 4
        if ext_type == 0:
            list_end = min(pos + 2 + struct.unpack_from("!H", data, pos)[0], end)
            item = pos + 2
            while item + 3 <= list_end:
                name_type, size = struct.unpack_from("!BH", data, item)
                item += 3
                if name_type == 0 and item + size <= list_end and 0 < size <= MAX_NAME:
                    return data[item : item + size].decode("ascii").lower()
                item += size
            return None
        pos += ext_len
    return None


def is_global(address: str) -> bool:
    """Whether ``address`` is publicly routable (pools are on the internet; clusters are not)."""
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


# -- policy ------------------------------------------------------------------------------------

CLUSTER_ENGINES = frozenset({"AdminNetworkPolicy", "Cilium", "Calico"})
"""What the operator may report in ``status.network.enforcement`` when the cluster blocks."""


def node_blocks(enforcement: str, reported: str | None) -> bool:
    """Whether the node agent's nftables table blocks for a policy asking ``enforcement``.

    ``Node`` always; ``Auto`` unless the operator reports (``status.network.enforcement``) that
    a cluster policy engine enforces it: until it says so, and when it reports ``Node`` or
    nothing at all (no operator, an older one), the node blocks rather than leave a gap. An
    explicit ``AdminNetworkPolicy``/``Cilium``/``Calico`` is the cluster's alone.
    """
    if enforcement == "Node":
        return True
    if enforcement == "Auto":
        return reported not in CLUSTER_ENGINES
    return False


W_FIRST_BYTES = 1.0
"""A mining protocol spoken: conclusive on its own."""
W_POOL_LOOKUP = 0.8
W_POOL_SNI = 0.8
W_POOL_ADDRESS = 0.8
W_POOL_PORT = 0.5

"""First bytes of a TCP flow: a mining protocol on any port, the TLS server name."""

from __future__ import annotations

import json
import random

from node_agent.judge import network
from tests.unit.node_agent import network_packets as wire


def test_a_stratum_subscribe_is_recognised() -> None:
    line = b'{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5"]}\n'
    assert network.fingerprint(line) == "stratum mining.subscribe"


def test_an_xmrig_login_names_its_agent() -> None:
    body = {
        "id": 1,
        "jsonrpc": "2.0",
        "method": "login",
        "params": {"login": "4Abc", "pass": "x", "agent": "XMRig/6.21.0 (Linux x86_64)"},
    }
    line = json.dumps(body).encode() + b"\n"
    assert network.fingerprint(line) == "xmrig login (agent XMRig/6.21.0 (Linux x86_64))"


def test_an_escaped_method_name_does_not_hide_stratum() -> None:
    line = b'{"id":1,"method":"mining\\u002esubscribe","params":[]}\n'
    assert network.fingerprint(line) == "stratum mining.subscribe"


def test_a_getblocktemplate_inside_an_http_post_is_recognised() -> None:
    body = b'{"jsonrpc":"1.0","id":"x","method":"getblocktemplate","params":[]}'
    request = b"POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n\r\n" + body
    assert network.fingerprint(request) == "getblocktemplate"


def test_a_truncated_stratum_line_is_still_recognised_from_its_bytes() -> None:
    assert network.fingerprint(b'{"id":1,"method": "mining.authorize","params":["wal') == (
        "stratum mining.authorize"
    )


def test_ordinary_json_rpc_and_http_are_not_mining() -> None:
    assert (
        network.fingerprint(b'{"jsonrpc":"2.0","method":"login","params":{"user":"a"}}\n') is None
    )
    assert network.fingerprint(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n") is None
    assert network.fingerprint(b'{"method":"eth_blockNumber","id":1}\n') is None


def test_the_sni_of_a_client_hello_is_read() -> None:
    assert network.client_hello_sni(wire.client_hello("Pool.SupportXMR.com")) == (
        "pool.supportxmr.com"
    )
    assert network.client_hello_sni(wire.client_hello(None)) is None


def test_a_truncated_client_hello_gives_no_partial_name_and_no_error() -> None:
    hello = wire.client_hello("pool.supportxmr.com")
    for cut in range(len(hello)):
        assert network.client_hello_sni(hello[:cut]) in (None, "pool.supportxmr.com")


def test_random_bytes_never_crash_the_first_bytes_decoders() -> None:
    rng = random.Random(1415)
    hello = wire.client_hello("pool.supportxmr.com")
    samples = [rng.randbytes(rng.randrange(0, 800)) for _ in range(3000)]
    for _ in range(3000):
        mutated = bytearray(hello)
        for _ in range(rng.randrange(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        samples.append(bytes(mutated))
    samples.append(b"{" * 5000 + b"\n")  # deep nesting: json's recursion limit
    for data in samples:
        network.fingerprint(data)
        network.client_hello_sni(data)


def test_only_the_first_bytes_are_inspected() -> None:
    padded = b" " * network.MAX_FIRST_BYTES + b'{"method":"mining.subscribe"}'
    assert network.fingerprint(padded) is None


def test_a_truncated_tcp_segment_is_refused() -> None:
    segment = wire.ipv4_tcp("10.0.0.2", "198.18.0.1", 40000, 3333, b"hello")
    for cut in (0, 10, 20, 30):
        try:
            network.parse_packet(segment[:cut])
        except network.DecodeError:
            continue
        raise AssertionError(f"cut at {cut} decoded")

"""DNS answers as the network layer reads them: pool names in any form, hostile bytes."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest

from node_agent.judge import network
from tests.unit.node_agent import network_packets as wire

POOLS = network.DomainMatcher(["supportxmr.com", "пул.example", "Pool.Example.ORG."])


def test_a_subdomain_of_a_pool_domain_matches_and_a_lookalike_does_not() -> None:
    assert POOLS.match("pool.supportxmr.com") == "supportxmr.com"
    assert POOLS.match("supportxmr.com.") == "supportxmr.com"
    assert POOLS.match("notsupportxmr.com") is None
    assert POOLS.match("supportxmr.com.evil.example") is None


def test_case_and_trailing_dots_do_not_evade_the_match() -> None:
    assert POOLS.match("EU.POOL.EXAMPLE.ORG.") == "pool.example.org"


def test_a_unicode_pool_domain_matches_its_punycode_on_the_wire() -> None:
    punycode = "пул.example".encode("idna").decode()
    assert POOLS.match(f"eu.{punycode}") == punycode
    assert POOLS.match("eu.ПУЛ.example") == punycode


def test_a_pool_answer_yields_its_addresses_and_ttl() -> None:
    data = wire.dns_answer(
        "xmr.supportxmr.com",
        [("xmr.supportxmr.com", 1, "198.18.0.7"), ("xmr.supportxmr.com", 28, "2001:db8::7")],
        ttl=42,
    )
    message = network.parse_dns(data)
    found = network.pool_lookup(message, POOLS)
    assert found is not None
    assert found.domain == "supportxmr.com"
    assert found.addresses == ("198.18.0.7", "2001:db8::7")
    assert found.ttl == 42
    assert found.evidence == "xmr.supportxmr.com -> 198.18.0.7, 2001:db8::7"


def test_a_benign_name_whose_cname_leads_to_a_pool_is_a_pool_lookup() -> None:
    data = wire.dns_answer(
        "cdn.innocent.example",
        [
            ("cdn.innocent.example", 5, "gulf.supportxmr.com"),
            ("gulf.supportxmr.com", 1, "198.18.0.9"),
        ],
    )
    found = network.pool_lookup(network.parse_dns(data), POOLS)
    assert found is not None
    assert found.name == "cdn.innocent.example"
    assert found.addresses == ("198.18.0.9",)


def test_a_benign_answer_is_not_a_pool_lookup() -> None:
    data = wire.dns_answer("example.com", [("example.com", 1, "198.18.1.1")])
    assert network.pool_lookup(network.parse_dns(data), POOLS) is None


def test_a_query_is_not_an_answer() -> None:
    query = (
        struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + wire.name("supportxmr.com") + b"\0\1\0\1"
    )
    assert network.pool_lookup(network.parse_dns(query), POOLS) is None


def test_a_compression_pointer_loop_is_refused() -> None:
    header = struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0)
    looping = header + b"\xc0\x0c"  # points at itself
    with pytest.raises(network.DecodeError):
        network.parse_dns(looping)


def test_a_name_longer_than_dns_allows_is_refused() -> None:
    long_name = b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\0"
    data = struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + long_name + b"\0\1\0\1"
    with pytest.raises(network.DecodeError):
        network.parse_dns(data)


def test_an_answer_cut_short_keeps_the_records_before_the_cut() -> None:
    data = wire.dns_answer(
        "a.supportxmr.com",
        [("a.supportxmr.com", 1, "198.18.0.1"), ("a.supportxmr.com", 1, "198.18.0.2")],
    )
    message = network.parse_dns(data[:-3])
    assert [r.value for r in message.answers] == ["198.18.0.1"]


def test_a_dns_answer_over_tcp_is_read_past_its_length_prefix() -> None:
    message = wire.dns_answer("a.supportxmr.com", [("a.supportxmr.com", 1, "198.18.0.1")])
    segment = wire.ipv4_tcp(
        "10.0.0.53", "10.0.0.2", 53, 40000, struct.pack("!H", len(message)) + message
    )
    packet = network.parse_packet(segment)
    assert network.parse_dns(network.dns_payload(packet)).answers[0].value == "198.18.0.1"


def test_random_bytes_never_crash_the_dns_and_packet_decoders() -> None:
    rng = random.Random(1414)
    valid = wire.dns_answer(
        "x.supportxmr.com",
        [("x.supportxmr.com", 5, "y.supportxmr.com"), ("y.supportxmr.com", 1, "198.18.0.1")],
    )
    samples = [rng.randbytes(rng.randrange(0, 600)) for _ in range(3000)]
    for _ in range(3000):  # valid messages with a few bytes changed: deeper paths
        mutated = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        samples.append(bytes(mutated[: rng.randrange(len(mutated) + 1)]))
    for data in samples:
        for decode in (network.parse_dns, network.parse_packet):
            with contextlib.suppress(network.DecodeError):
                decode(data)
        with contextlib.suppress(network.DecodeError):
            network.pool_lookup(network.parse_dns(data), POOLS)


def test_the_prefilter_passes_every_answer_naming_a_pool_and_drops_benign_ones() -> None:
    prefilter = network.LabelPrefilter(["supportxmr.com", "пул.example"])
    pooled = wire.dns_answer(
        "cdn.innocent.example",
        [("cdn.innocent.example", 5, "eu.SupportXMR.com"), ("eu.SupportXMR.com", 1, "198.18.0.9")],
    )
    assert prefilter.may_match(pooled)
    punycode = "пул.example".encode("idna").decode()
    assert prefilter.may_match(wire.dns_answer(f"a.{punycode}", []))
    assert not prefilter.may_match(wire.dns_answer("example.com", [("example.com", 1, "1.1.1.1")]))
    assert not network.LabelPrefilter([]).may_match(pooled)


def test_only_public_addresses_are_global() -> None:
    assert network.is_global("1.1.1.1")
    assert not network.is_global("10.96.0.1")
    assert not network.is_global("169.254.169.254")
    assert not network.is_global("not an address")

"""The CoreDNS sinkhole's data: the chart's zone file is the bundle's, generated, never edited."""

from __future__ import annotations

from pathlib import Path

from minerguard.signatures import bundle, coredns

ROOT = Path(__file__).resolve().parents[3]


def test_the_charts_zone_file_matches_the_bundle() -> None:
    committed = ROOT / coredns.ZONES_FILE
    assert committed.read_text() == coredns.zones_file(bundle.builtin()), (
        f"{committed} is stale: run `python -m minerguard.signatures.coredns --write`"
    )


def test_a_zone_covered_by_its_parent_is_left_out() -> None:
    assert coredns.zones(["xmr.nanopool.org", "nanopool.org", "eu.xmr.nanopool.org"]) == [
        "nanopool.org"
    ]


def test_zones_are_lowercase_idna_without_trailing_dots_and_junk_is_dropped() -> None:
    found = coredns.zones(["Pool.Example.ORG.", "bücher.example", "not a name", "x.org {", "."])
    assert found == ["pool.example.org", "xn--bcher-kva.example"]


def test_experimental_pool_hosts_are_not_sunk() -> None:
    experimental = {
        e.value
        for e in bundle.builtin().signatures
        if e.kind is bundle.Kind.POOL_HOST and e.tier == "experimental"
    }
    assert experimental
    assert not experimental & set(coredns.pool_zones(bundle.builtin()))


def test_the_server_block_answers_nxdomain_for_each_zone() -> None:
    block = coredns.server_block(["a.org", "b.net"], log=False)
    assert block == (
        "a.org:53 b.net:53 {\n    template ANY ANY {\n        rcode NXDOMAIN\n    }\n}\n"
    )

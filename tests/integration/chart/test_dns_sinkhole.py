"""The optional CoreDNS sinkhole: every bundle pool zone (and below) answered NXDOMAIN."""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.signatures import bundle, coredns
from tests.integration.chart import chart

SINKHOLE: dict[str, Any] = {"dns": {"sinkhole": {"enabled": True}}}


def _server_block(values: dict[str, Any]) -> str:
    config = chart.render(values).one("ConfigMap", "coredns-custom")
    assert config["metadata"]["namespace"] == "kube-system"
    text = config["data"]["minerguard-pools.server"]
    assert isinstance(text, str)
    return text


def _zones(block: str) -> list[str]:
    keys = next(line for line in block.splitlines() if line.endswith("{") and ":53" in line)
    return [key.removesuffix(":53") for key in keys.removesuffix("{").split()]


def test_the_sinkhole_is_off_by_default() -> None:
    assert not [m for m in chart.render().of_kind("ConfigMap") if m.name == "coredns-custom"]


def test_enabled_it_answers_every_bundle_pool_zone_with_nxdomain() -> None:
    block = _server_block(SINKHOLE)
    assert _zones(block) == coredns.pool_zones(bundle.builtin())
    assert "ethpool.org" in _zones(block)
    body = [line.strip() for line in block.splitlines()]
    assert body[body.index("template ANY ANY {") + 1] == "rcode NXDOMAIN"
    assert "log" in body


def test_its_server_block_is_the_one_the_cli_prints() -> None:
    """Pasting `python -m minerguard.signatures.coredns` into a Corefile does the same."""
    block = _server_block(SINKHOLE)
    printed = coredns.server_block(coredns.pool_zones(bundle.builtin()))
    assert [line.strip() for line in block.splitlines()[1:]] == [
        line.strip() for line in printed.splitlines()
    ]


def test_extra_domains_are_added_normalised_and_logging_can_be_off() -> None:
    values = {
        "dns": {"sinkhole": {"enabled": True, "log": False, "extraDomains": ["Pool.Example.ORG."]}}
    }
    block = _server_block(values)
    assert "pool.example.org" in _zones(block)
    assert "log" not in [line.strip() for line in block.splitlines()]


@pytest.mark.parametrize(
    "domain",
    [
        "x.org {\n    forward . 203.0.113.9\n}\nevil.org",  # a second server block
        "x.org:53 . ",  # the root zone: every name in the cluster
        ".",
    ],
)
def test_a_domain_that_would_rewrite_the_corefile_is_refused(domain: str) -> None:
    values = {"dns": {"sinkhole": {"enabled": True, "extraDomains": [domain]}}}
    with pytest.raises(Exception, match="extraDomains"):
        chart.render(values)

"""A network finding as the cluster sees it: the MinerDetection's network evidence."""

from __future__ import annotations

from node_agent.output import report
from node_agent.records import LAYER_NETWORK, Connection, Finding, PodRef, Reason

POD = PodRef("tenant", "miner-0", "0f6c1d2e-3b4a-4c5d-8e9f-a0b1c2d3e4f5")


def finding(signal: str, **fields: object) -> Finding:
    return Finding(
        layer=LAYER_NETWORK,
        score=1.0,
        reasons=(Reason(signal, "seen", 1.0),),
        policy="p",
        mode="Enforce",
        observed_at=1_800_000_000.0,
        cgroup="/kubepods/pod0f6c1d2e-3b4a-4c5d-8e9f-a0b1c2d3e4f5/abc",
        pod_uid=POD.uid,
        **fields,  # type: ignore[arg-type]
    )


def test_a_network_detection_carries_lookups_protocol_and_pool_host() -> None:
    connection = Connection(
        "10.1.0.2", 40000, "198.18.0.1", 3333, 1, 0, host="supportxmr.com", protocol="stratum"
    )
    body = report.to_detection(
        finding(
            "mining-protocol",
            connections=(connection,),
            lookups=("xmr.supportxmr.com -> 198.18.0.1",),
        ),
        POD,
        "node-a",
    ).to_k8s()
    evidence = body["spec"]["evidence"]
    assert body["spec"]["layer"] == "Network"
    assert evidence["lookups"] == ["xmr.supportxmr.com -> 198.18.0.1"]
    assert evidence["connections"][0]["protocol"] == "stratum"
    assert evidence["connections"][0]["host"] == "supportxmr.com"


def test_each_kind_of_network_evidence_is_its_own_record_for_a_pod() -> None:
    names = {
        report.detection_name(finding(signal), POD)
        for signal in ("pool-lookup", "pool-port", "mining-protocol")
    }
    assert len(names) == 3

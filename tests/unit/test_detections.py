"""One MinerDetection builder: what every finder's record has in common."""

from __future__ import annotations

from minerguard import detections, evaluate
from minerguard.api.detection import Evidence, Layer, Phase
from tests.support import policy

MINER = ["xmrig", "-o", "stratum+tcp://pool.example:3333", "--donate-level", "0"]


def finding(command: list[str]) -> evaluate.Finding:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": command}]},
    }
    found = evaluate.evaluate_object(pod, [policy()]).findings
    assert found, "the miner is found"
    return found[0]


def test_scores_and_weights_are_rounded_and_free_text_is_capped() -> None:
    record = detections.build(
        layer=Layer.EXEC,
        score=0.1 + 0.2 + 0.6,
        reasons=[("pool-url", "x" * 5000, 1 / 3)],
        observed_at=1795417200.0,
        policy="guard",
        mode="Enforce",
        namespace="apps",
        labels={"app.kubernetes.io/managed-by": "minerguard-agent"},
        evidence=Evidence(pid=7),
    )
    spec = record.spec
    assert (spec.score, spec.reasons[0].weight) == (0.9, 0.333)
    assert len(spec.reasons[0].detail) == detections.MAX_DETAIL_CHARS
    assert spec.observed_at == "2026-11-23T07:00:00Z"
    assert spec.evidence.pid == 7
    assert record.status is None, "nothing done yet: the operator takes it from Pending"


def test_actions_the_finder_took_make_the_record_born_acted() -> None:
    record = detections.build(
        layer=Layer.EXEC,
        score=1.0,
        reasons=(),
        observed_at=1795417200.0,
        policy="guard",
        mode="Audit",
        namespace=None,
        labels={},
        actions_taken=["KillProcess: killed 7"],
    )
    assert record.spec.mode == "Audit"
    assert record.status is not None
    assert record.status.phase is Phase.ACTED
    assert record.status.acted_at == "2026-11-23T07:00:00Z"


def test_an_admission_finding_records_the_container_and_its_capped_command_line() -> None:
    long_tail = ["--opt"] * 2000
    record = detections.from_admission(
        finding([*MINER, *long_tail]),
        object_kind="Deployment",
        object_name="web",
        namespace="apps",
        observed_at=1795417200.0,
        mode="Audit",
        labels={"minerguard.io/layer": "admission"},
        name="scan-deployment-web-1234",
    )
    spec = record.spec
    assert (spec.layer, spec.object_kind, spec.pod_name) == (Layer.ADMISSION, "Deployment", "web")
    assert (spec.container, spec.image, spec.policy) == ("c", "busybox", "guard")
    assert spec.evidence.command_line is not None
    assert spec.evidence.command_line.startswith("xmrig -o stratum+tcp://pool.example:3333")
    assert len(spec.evidence.command_line) == detections.MAX_COMMAND_CHARS
    assert all(" (in " in reason.detail for reason in spec.reasons), "where each signal was seen"
    assert record.metadata.name == "scan-deployment-web-1234"
    assert record.to_k8s()["metadata"]["labels"] == {"minerguard.io/layer": "admission"}
